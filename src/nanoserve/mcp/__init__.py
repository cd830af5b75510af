"""nanoserve as an MCP server (official SDK): the pipeline and model management as MCP tools.

    client.py    GatewayClient: the gateway's REST API, the tools' only way in
    protocol.py  the tools' structured outputs (pydantic)
    metrics.py   serving figures out of the Prometheus text (pure)
    tools.py     NanoserveTools: one typed method per tool, seed 000's aliases
    server.py    create_mcp_server: tools, resources, errors as MCP tool errors
    mount.py     McpEndpoint: streamable HTTP at /mcp in the gateway, DNS-rebinding checks
    stdio.py     serve_stdio: ``nanoserve mcp --url GATEWAY``

Nothing here is imported by the gateway unless it mounts ``/mcp``.
"""
