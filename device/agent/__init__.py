"""The agent: `python3 agent.pyz --bundle DIR --out DIR ...` (cli) -> the plan of rows (plan) ->
one child per row (runner, timing, sessions) -> the result files (result_store)."""
