/* glibc 2.34+ made SIGSTKSZ a runtime value; the abseil vendored by mediasoup 3.8.4
   uses it in std::max(SIGSTKSZ, 65536), which needs a compile-time int. */
#include <signal.h>
#undef SIGSTKSZ
#define SIGSTKSZ 16384
