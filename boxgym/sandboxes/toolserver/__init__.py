"""The in-container tool server (standard library only; runs on the image's python3).

Copied into every image at ``/opt/boxgym/toolserver`` and started as the
container's main process: ``python3 -I /opt/boxgym/toolserver/main.py --socket ...``.
The host side imports only :mod:`.protocol` from here.
"""
