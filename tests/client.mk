# client test suites
