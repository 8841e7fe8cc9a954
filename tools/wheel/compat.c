/* Hidden definitions of the few libc/libstdc++ symbols that code compiled on Debian 12
 * (glibc 2.36, gcc 12 libstdc++ headers) asks for but the manylinux_2_28 floor (glibc 2.28,
 * libstdc++ GLIBCXX_3.4.24, which torch 2.11.0's own wheel needs) lacks. The manylinux images
 * do the same with gcc-toolset's libstdc++_nonshared.a. Hidden: the extension's references
 * bind here at link time, and no other library sees them.
 * tools/wheel/check.py fails the wheel if anything newer than the floor is left. */

/* glibc 2.32: libstdc++ 12's inline reference counting reads it to skip atomics when the
 * process has one thread. 0 means "may be threaded": always atomic, which is always correct. */
__attribute__((visibility("hidden"))) char __libc_single_threaded = 0;

/* GLIBCXX_3.4.29: std::__throw_bad_array_new_length(), called by gcc 12's inline new[]
 * paths; the same exception comes from __cxa_throw_bad_array_new_length (CXXABI_1.3.8). */
extern void __cxa_throw_bad_array_new_length(void) __attribute__((noreturn));
__attribute__((visibility("hidden"), noreturn)) void _ZSt28__throw_bad_array_new_lengthv(void)
{
    __cxa_throw_bad_array_new_length();
}

/* GLIBCXX_3.4.26: std::ostringstream::ostringstream(). It is the constructor taking an
 * openmode (GLIBCXX_3.4.21) with std::ios_base::out (_S_out = 1 << 4), as gcc 12's header
 * defines it. */
extern void _ZNSt7__cxx1119basic_ostringstreamIcSt11char_traitsIcESaIcEEC1ESt13_Ios_Openmode(void *self,
                                                                                              int mode);
__attribute__((visibility("hidden"))) void _ZNSt7__cxx1119basic_ostringstreamIcSt11char_traitsIcESaIcEEC1Ev(void *self)
{
    _ZNSt7__cxx1119basic_ostringstreamIcSt11char_traitsIcESaIcEEC1ESt13_Ios_Openmode(self, 1 << 4);
}

/* CXXABI_1.3.13: std::exception_ptr::_M_addref() and _M_release(), which gcc 12's inline
 * exception_ptr copy and destruction call. Both come from the copy constructor and destructor
 * libstdc++ has exported since CXXABI_1.3.3: a copy that is never destroyed adds one reference,
 * and destroying a second holder of the same pointer drops one (freeing at zero). */
extern void _ZNSt15__exception_ptr13exception_ptrC1ERKS0_(void **self, void *const *other);
extern void _ZNSt15__exception_ptr13exception_ptrD1Ev(void **self);
__attribute__((visibility("hidden"))) void _ZNSt15__exception_ptr13exception_ptr9_M_addrefEv(void **self)
{
    void *copy;
    _ZNSt15__exception_ptr13exception_ptrC1ERKS0_(&copy, self);
}
__attribute__((visibility("hidden"))) void _ZNSt15__exception_ptr13exception_ptr10_M_releaseEv(void **self)
{
    void *holder = *self;
    _ZNSt15__exception_ptr13exception_ptrD1Ev(&holder);
}
