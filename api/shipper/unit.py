"""The systemd unit that runs `devmesh ship journald` on a host, and where it is installed.

`render_unit` fills in the devmesh executable, the server and the options; `deploy/devmesh-ship-journald.service`
is the unit with the defaults (a test keeps the two the same). The key comes from an environment file
(`/etc/devmesh/ship.env`: `DEVMESH_API_KEY=...`, readable by root only), never from the unit itself.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

UNIT_NAME = "devmesh-ship-journald.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"
ENV_FILE = "/etc/devmesh/ship.env"
CURSOR_FILE = "/var/lib/devmesh-ship/cursor.json"
DEFAULT_SERVER = "http://127.0.0.1:8080"
DEFAULT_EXEC = "/usr/local/bin/devmesh"

_TEMPLATE = """\
[Unit]
Description=DevMesh journal shipper (devmesh ship journald)
# What it does and how to install it: the README, "Shipping a host's journal".
After=network-online.target systemd-journald.service
Wants=network-online.target

[Service]
Type=simple
# DEVMESH_API_KEY=<a key with the ingest scope> (devmesh keys create --scope ingest)
EnvironmentFile=-{env_file}
ExecStart={exec_start}
Restart=always
RestartSec=5
# The cursor file and its spool live in /var/lib/devmesh-ship (StateDirectory).
StateDirectory=devmesh-ship
DynamicUser=yes
SupplementaryGroups=systemd-journal
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""


def render_unit(devmesh: str = DEFAULT_EXEC, server: str = DEFAULT_SERVER, extra: Sequence[str] = ()) -> str:
    """The unit text: `devmesh ship journald --server URL --cursor-file /var/lib/devmesh-ship/cursor.json` and
    `extra` options (filters, --config), each argument quoted for systemd."""
    args = [devmesh, "ship", "journald", "--server", server, "--cursor-file", CURSOR_FILE, *extra]
    return _TEMPLATE.format(env_file=ENV_FILE, exec_start=" ".join(shlex.quote(a) for a in args))


def install_steps(unit_path: str) -> list[str]:
    """What to run after the unit is written."""
    return [
        f"install -m 600 /dev/null {ENV_FILE}  # then write DEVMESH_API_KEY=<key> into it",
        "systemctl daemon-reload",
        f"systemctl enable --now {UNIT_NAME}",
        f"journalctl -u {UNIT_NAME} -f  # to watch it",
    ] + ([] if unit_path == UNIT_PATH else [f"(unit written to {unit_path}: copy it to {UNIT_PATH} first)"])
