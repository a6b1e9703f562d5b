// A stand-in for a musl Node.js, which cannot run on this machine: loads each .node file given with dlopen
// under musl's dynamic loader, exporting every Node-API function as a stub (scripts/test-musl.sh generates
// them from the node-api-headers package), and calls the module's version entry point. That proves the file
// is a shared object for this architecture that musl can link: its C library, C++ runtime and TLS needs
// resolve, only Node-API is left to the host, and its static initialisers run. It does not run the kernels.
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    void* h = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      printf("FAIL %s: %s\n", argv[i], dlerror());
      return 1;
    }
    void* reg = dlsym(h, "napi_register_module_v1");
    int (*version)(void) = (int (*)(void))dlsym(h, "node_api_module_get_api_version_v1");
    if (!reg || !version) {
      printf("FAIL %s: the Node-API entry points are not exported\n", argv[i]);
      return 1;
    }
    printf("ok %s: loaded under musl, Node-API version %d\n", argv[i], version());
  }
  return 0;
}
