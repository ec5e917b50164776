"""``python -m worldflux.codegen`` (see worldflux.codegen.command)."""

from worldflux.codegen.command import main

raise SystemExit(main())
