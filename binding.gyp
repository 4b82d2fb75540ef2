{
  "targets": [
    {
      "target_name": "strata_native",
      "sources": ["native/fsx.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "strata-run",
      "type": "executable",
      "sources": ["native/strata-run.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
