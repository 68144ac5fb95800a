"""The device side: everything that runs on the board, packed as one agent.pyz
(host/agent_archive.py). Python 3.8+, the standard library, numpy and a runtime only.

By axis:
- the contract the host shares (this folder's top level): `schema` (bundle, CSV and JSON
  formats, versioned), `manifest` (reading and checking a bundle's manifest), `options` (the
  agent's options), `metrics`, `units` (compute units), `runtimes`, `common`;
- `agent/`: the agent itself, from its command line (`agent.cli`) through the plan, the
  row's child and its timing to the result files;
- `power/`: the power sources and the meter (--power);
- `scenarios/`: frame rate, streams and soak, run after a row's timed loop;
- `remote/`: stdlib-only scripts the host sends as source (`python3 -c`), before agent.pyz
  is on the device or without it.
"""
