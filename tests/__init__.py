"""The test suite (a package, so that test packages such as tests.packaging get unique names)."""
