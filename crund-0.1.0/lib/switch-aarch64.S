/*
 * switch-aarch64.S — coroutine context switch for AArch64 (AAPCS64).
 *
 * cr__coro_swap(void **save_sp, void *load_sp): store the callee-saved
 * registers x19-x30 and d8-d15 (160 bytes) below the current stack
 * pointer, save it in *save_sp, load load_sp, restore the other
 * coroutine's registers and return through its x30.  The FPCR is not
 * switched: coroutines share the thread's floating point environment.
 */
	.text
	.globl cr__coro_swap
	.hidden cr__coro_swap
	.type cr__coro_swap, %function
	.p2align 4
cr__coro_swap:
	.cfi_startproc
	sub sp, sp, #160
	stp x19, x20, [sp, #0]
	stp x21, x22, [sp, #16]
	stp x23, x24, [sp, #32]
	stp x25, x26, [sp, #48]
	stp x27, x28, [sp, #64]
	stp x29, x30, [sp, #80]
	stp d8, d9, [sp, #96]
	stp d10, d11, [sp, #112]
	stp d12, d13, [sp, #128]
	stp d14, d15, [sp, #144]
	mov x9, sp
	str x9, [x0]
	mov sp, x1
	ldp x19, x20, [sp, #0]
	ldp x21, x22, [sp, #16]
	ldp x23, x24, [sp, #32]
	ldp x25, x26, [sp, #48]
	ldp x27, x28, [sp, #64]
	ldp x29, x30, [sp, #80]
	ldp d8, d9, [sp, #96]
	ldp d10, d11, [sp, #112]
	ldp d12, d13, [sp, #128]
	ldp d14, d15, [sp, #144]
	add sp, sp, #160
	ret
	.cfi_endproc
	.size cr__coro_swap, .-cr__coro_swap

/*
 * First code run on a new coroutine stack: x19 = entry, x20 = arg.
 * cr__coro_boot never returns; the return address column is undefined so
 * unwinders stop here.
 */
	.globl cr__coro_trampoline
	.hidden cr__coro_trampoline
	.type cr__coro_trampoline, %function
	.p2align 4
cr__coro_trampoline:
	.cfi_startproc
	.cfi_undefined x30
	mov x0, x20
	mov x1, x19
	bl cr__coro_boot
	brk #0
	.cfi_endproc
	.size cr__coro_trampoline, .-cr__coro_trampoline

	.section .note.GNU-stack,"",%progbits
