# e2e test suites
