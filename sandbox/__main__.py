"""`python -m sandbox`: serve a scenario until Ctrl-C (see `sandbox.server.main`)."""

from sandbox.server import main

raise SystemExit(main())
