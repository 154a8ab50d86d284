"""The operator's dashboard: agents, the live message stream, each agent's terminal and stats, served
by the daemon over HTTP + SSE in its own task group (`server.open_dashboard`).

Nothing is imported here: `config.py` (and so every hivectl command) reads `address`, and must not
pay for starlette and uvicorn, which only the daemon loads, and only with the dashboard on.
"""
