"""Entry point: ``python3 -I main.py --socket PATH [--ttl S] ...`` (see server.py)."""

import asyncio
import os
import sys

# -I leaves the script's own folder off sys.path; import the package from its parent.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from toolserver.server import serve  # noqa: E402

if __name__ == "__main__":
    status = asyncio.run(serve(sys.argv[1:]))
    sys.stdout.flush()
    sys.stderr.flush()
    # Not sys.exit: the interpreter would wait for worker threads, and one stuck in the
    # kernel would keep the server, and its container, alive.
    os._exit(status)
