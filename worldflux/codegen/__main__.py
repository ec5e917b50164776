"""``python -m worldflux.codegen`` (see worldflux.codegen.cli)."""

from worldflux.codegen.cli import main

raise SystemExit(main())
