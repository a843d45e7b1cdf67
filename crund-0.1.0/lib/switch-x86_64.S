/*
 * switch-x86_64.S — coroutine context switch for x86-64 (System V ABI).
 *
 * cr__coro_swap(void **save_sp, void *load_sp): push the callee-saved
 * registers on the current stack, store the stack pointer in *save_sp,
 * load load_sp and pop the other coroutine's registers.  Caller-saved
 * registers are saved by the compiler around the call.  The FPU control
 * word and MXCSR are not switched: coroutines share the thread's floating
 * point environment (saving them would cost ~10 ns per switch).
 */
	.text
	.globl cr__coro_swap
	.hidden cr__coro_swap
	.type cr__coro_swap, @function
	.p2align 4
cr__coro_swap:
	.cfi_startproc
	pushq %rbp
	pushq %rbx
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, (%rdi)
	movq %rsi, %rsp
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbx
	popq %rbp
	ret
	.cfi_endproc
	.size cr__coro_swap, .-cr__coro_swap

/*
 * First code run on a new coroutine stack (cr__coro_init makes the first
 * swap "return" here): r12 = entry, r13 = arg.  cr__coro_boot never
 * returns, so nothing ever returns off the top of the stack; the return
 * address column is undefined so unwinders and debuggers stop here.
 */
	.globl cr__coro_trampoline
	.hidden cr__coro_trampoline
	.type cr__coro_trampoline, @function
	.p2align 4
cr__coro_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	movq %r13, %rdi
	movq %r12, %rsi
	call cr__coro_boot
	ud2
	.cfi_endproc
	.size cr__coro_trampoline, .-cr__coro_trampoline

	.section .note.GNU-stack,"",@progbits
