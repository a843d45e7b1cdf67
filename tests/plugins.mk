# plugins test suites
