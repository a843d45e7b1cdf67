# systemd rules (owned by the systemd area)
