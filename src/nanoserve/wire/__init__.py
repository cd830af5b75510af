"""The gateway↔worker protocol (docs/worker-protocol.md), in one package both sides import.

The gateway (``nanoserve.api``, ``nanoserve.orchestrator``) and the worker (``nanoserve.worker``)
speak OpenAI HTTP to each other; what they share lives here, one concept a module:

* ``protocol``: the OpenAI request models (with nanoserve's extensions).
* ``body``: reading and parsing a request body (size limit, JSON object, model).
* ``errors``: rendering the exception tree as OpenAI errors, and back from a worker's error body.
* ``client``: the gateway's HTTP client for one worker.
* ``headers``: the header names and values of the protocol.

It imports neither ``nanoserve.api``, ``nanoserve.worker``, ``nanoserve.orchestrator`` nor
``nanoserve.engines`` (the import contract in pyproject.toml, checked by ``make lint``): only
the shared bottom (``nanoserve.errors``) and light libraries.
"""
