"""Scripts the host sends as source and runs with `python3 -c SOURCE ...`
(host.agent_archive.device_script): each is one file, imports only the standard library and
runs on the device before agent.pyz is there, or without it (the lease and the wrapper around
the agent, the upload's content store, doctor's facts, the accelerator probe)."""
