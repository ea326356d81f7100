/* Allocation failure injection and heap accounting for a unit test: the
 * test replaces malloc (glibc allows it), counts the live blocks and bytes,
 * and fails exactly the Nth allocation when alloc_fail_at is N. Sanitizers
 * bring their own allocator, so under them XS_TEST_OWN_MALLOC is 0 and
 * nothing is replaced. Include once, from the test's one source file. */
#ifndef XS_TEST_ALLOC_TESTUTIL_H
#define XS_TEST_ALLOC_TESTUTIL_H

#include <malloc.h>
#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define XS_TEST_OWN_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define XS_TEST_OWN_MALLOC 0
#endif
#endif
#ifndef XS_TEST_OWN_MALLOC
#define XS_TEST_OWN_MALLOC 1
#endif

#if XS_TEST_OWN_MALLOC
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t k);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

static long alloc_count, alloc_fail_at; /* 0: never fail */
static long alloc_live;                 /* blocks allocated and not freed */
static size_t bytes_live, bytes_peak;   /* heap bytes held, as malloc_usable_size counts */

static int alloc_fails(void)
{
    return alloc_fail_at && ++alloc_count == alloc_fail_at;
}

static void bytes_add(void *q)
{
    bytes_live += malloc_usable_size(q);
    if (bytes_live > bytes_peak)
        bytes_peak = bytes_live;
}

void *malloc(size_t n)
{
    void *q = alloc_fails() ? NULL : __libc_malloc(n);
    alloc_live += q != NULL;
    if (q)
        bytes_add(q);
    return q;
}

void *calloc(size_t n, size_t k)
{
    void *q = alloc_fails() ? NULL : __libc_calloc(n, k);
    alloc_live += q != NULL;
    if (q)
        bytes_add(q);
    return q;
}

void *realloc(void *p, size_t n)
{
    size_t old = p ? malloc_usable_size(p) : 0;
    void *q = alloc_fails() ? NULL : __libc_realloc(p, n);
    alloc_live += !p && q;
    if (q) {
        bytes_live -= old;
        bytes_add(q);
    }
    return q;
}

void free(void *p)
{
    alloc_live -= p != NULL;
    if (p)
        bytes_live -= malloc_usable_size(p);
    __libc_free(p);
}
#endif /* XS_TEST_OWN_MALLOC */

#endif
