// Clang's thread-safety annotations (-Wthread-safety), as macros that vanish
// for other compilers. They state which lock guards which member and which
// functions expect a lock held, so the compiler checks the locking rules the
// headers describe. `make test` builds the core with clang and
// -Werror=thread-safety (the fuzz build), so a member touched without its
// lock fails the build.
#pragma once

#if defined(__clang__)
#define QK_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define QK_THREAD_ANNOTATION(x)
#endif

#define QK_CAPABILITY(name) QK_THREAD_ANNOTATION(capability(name))
#define QK_SCOPED_CAPABILITY QK_THREAD_ANNOTATION(scoped_lockable)
#define QK_GUARDED_BY(lock) QK_THREAD_ANNOTATION(guarded_by(lock))
#define QK_PT_GUARDED_BY(lock) QK_THREAD_ANNOTATION(pt_guarded_by(lock))
#define QK_REQUIRES(...) QK_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define QK_REQUIRES_SHARED(...) QK_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define QK_ACQUIRE(...) QK_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define QK_ACQUIRE_SHARED(...) QK_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define QK_RELEASE(...) QK_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define QK_RELEASE_SHARED(...) QK_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define QK_RELEASE_GENERIC(...) QK_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
#define QK_TRY_ACQUIRE(...) QK_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define QK_EXCLUDES(...) QK_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define QK_ASSERT_CAPABILITY(lock) QK_THREAD_ANNOTATION(assert_capability(lock))
#define QK_RETURN_CAPABILITY(lock) QK_THREAD_ANNOTATION(lock_returned(lock))
// For the few functions the analysis cannot follow (a lock handed over
// between threads); each use says why.
#define QK_NO_THREAD_SAFETY_ANALYSIS QK_THREAD_ANNOTATION(no_thread_safety_analysis)
