# lib test suites
