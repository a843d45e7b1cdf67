# daemon test suites
