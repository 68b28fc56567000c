#!/usr/bin/env python3
"""Home Assistant Core's own restore code as the oracle for `lifeboat backup create`.

Runs under the venv of ../shared/rig/ha-python/setup-ha-venv.sh (homeassistant 2026.11.0,
Python >= 3.14.2).

restore BACKUP.tar PASSWORD CONFIGDIR   stage CONFIGDIR/.HA_RESTORE as Home Assistant does before
                                        its restart, then call
                                        homeassistant.backup_restore.restore_backup(CONFIGDIR),
                                        as homeassistant/__main__.py does at startup. PASSWORD "-"
                                        means none. Prints JSON {"restored", "result"} where
                                        result is .HA_RESTORE_RESULT (then removed).
"""

import json
import sys
from pathlib import Path


def restore(backup, password, config_dir):
    from homeassistant import backup_restore

    cfg = Path(config_dir)
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / ".HA_RESTORE").write_text(json.dumps({
        "path": str(Path(backup).resolve()),
        "password": None if password == "-" else password,
        "remove_after_restore": False,
        "restore_database": True,
        "restore_homeassistant": True,
    }), encoding="utf-8")
    try:
        restored = backup_restore.restore_backup(str(cfg))
    except Exception as err:  # the result file says what went wrong
        restored = f"raised {type(err).__name__}: {err}"
    result_path = cfg / ".HA_RESTORE_RESULT"
    result = json.loads(result_path.read_text()) if result_path.exists() else None
    result_path.unlink(missing_ok=True)
    print(json.dumps({"restored": restored, "result": result}))


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "restore":
        restore(*args)
    else:
        sys.exit(f"unknown command {cmd}")
