"""The kernel side: discovery, the HTTP client, the SSE reader, the Job API and the widget.

It talks to a server over HTTP and never imports tornado, jupyter_server or
the engine (the contracts in ``pyproject.toml`` enforce it). Its public names
are re-exported by :mod:`batch_widget`; import them from there.
"""
