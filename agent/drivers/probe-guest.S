/* n0stack accelerator probe guest (agent/drivers/accel-probe.ts embeds it; rebuild with
 * hack/build-probe-guest.sh). A BIOS boot sector that walks the CPU through what a Linux boot
 * does before its first message, then writes the marker to COM1 and exits QEMU through
 * isa-debug-exit. Stage digits go to COM1 on the way, so a probe that stops says where:
 *   1 real mode   2 32-bit protected mode   3 long mode with paging (EFER MSR written)
 *   4 32 MiB of guest memory touched   5 50 million loop iterations done
 * Stage 5 is there because of a host whose KVM passed 1-4 in 1.4 s yet ran guest code about
 * 200 times slower than TCG (2 million iterations/s): a Linux guest never got past its setup. */
.code16
.globl _start
_start:
  cli
  cld
  xor %ax, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov $0x7c00, %sp
  mov $0x3f8, %dx
  mov $'1', %al
  out %al, %dx
  lgdtl gdt_desc
  mov %cr0, %eax
  or $1, %eax
  mov %eax, %cr0
  ljmpl $0x08, $pm32

.code32
pm32:
  mov $0x10, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov $0x7c00, %esp
  mov $0x3f8, %dx
  mov $'2', %al
  out %al, %dx
  /* identity-map the first 64 MiB: PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000 (32 pages of 2 MiB) */
  mov $0x1000, %edi
  xor %eax, %eax
  mov $0xc00, %ecx
  rep stosl
  movl $0x2003, 0x1000
  movl $0x3003, 0x2000
  mov $0x3000, %edi
  mov $0x83, %eax
  mov $32, %ecx
4:
  mov %eax, (%edi)
  add $0x200000, %eax
  add $8, %edi
  loop 4b
  mov $0x1000, %eax
  mov %eax, %cr3
  mov %cr4, %eax
  or $0x20, %eax
  mov %eax, %cr4
  mov $0xc0000080, %ecx
  rdmsr
  or $0x100, %eax
  wrmsr
  mov %cr0, %eax
  or $0x80000000, %eax
  mov %eax, %cr0
  ljmp $0x18, $lm64

.code64
lm64:
  mov $0x3f8, %dx
  mov $'3', %al
  out %al, %dx
  /* touch one byte per 4 KiB page from 4 MiB to 36 MiB: the guest memory faults in, as a kernel's does */
  mov $0x400000, %rdi
5:
  movb $1, (%rdi)
  add $0x1000, %rdi
  cmp $0x2400000, %rdi
  jb 5b
  mov $'4', %al
  out %al, %dx
  /* a stretch of plain computation (no exits): 50 million iterations, a blink natively and about 0.1 s under TCG */
  mov $50000000, %rcx
6:
  dec %rcx
  jnz 6b
  mov $'5', %al
  out %al, %dx
  lea msg(%rip), %rsi
1:
  lodsb
  test %al, %al
  jz 2f
  out %al, %dx
  jmp 1b
2:
  mov $0xf4, %dx
  mov $0x10, %al
  out %al, %dx
3:
  hlt
  jmp 3b

.align 8
gdt:
  .quad 0
  .quad 0x00cf9a000000ffff
  .quad 0x00cf92000000ffff
  .quad 0x00af9a000000ffff
gdt_desc:
  .word gdt_desc - gdt - 1
  .long gdt
msg:
  .asciz "\nN0STACK-PROBE-OK\n"
  . = _start + 510
  .byte 0x55, 0xaa
