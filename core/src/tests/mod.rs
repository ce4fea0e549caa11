// scenario tests: see files
