# systemd test suites
