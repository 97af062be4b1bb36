{
  "targets": [
    {
      "target_name": "wasmvisor_native",
      "sources": ["wasmvisor-native.c"],
      "cflags_c": ["-std=gnu11", "-O2", "-Wall"]
    }
  ]
}
