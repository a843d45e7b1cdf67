/*
 * plugins/elf.c — the plugin pre-check: read the descriptor out of a .so
 * file's bytes before dlopen() runs any code of it.
 *
 * dlopen() runs the object's constructors (and those of everything it
 * links), so a plugin that is merely *built for another ABI* would already
 * be executing code by the time dlsym() could tell us so.  We therefore
 * read the descriptor out of the ELF file ourselves first — dynamic symbol
 * table, then the PT_LOAD segment holding the symbol — and check its fixed
 * head (magic, ABI major/minor, size) without running anything.
 * registry.c runs this on every file; after dlopen(), abi.c checks the
 * head again in memory with the same crd_plugin_check_head().
 */
#include "config.h"

#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "plugins/plugins.h"

/* struct crd_plugin_head (plugins.h) is the head of every descriptor. */
_Static_assert(offsetof(crund_plugin, magic) == 0 && offsetof(crund_plugin, abi_major) == 8 &&
		       offsetof(crund_plugin, abi_minor) == 10 &&
		       offsetof(crund_plugin, size) == 12,
	       "descriptor head layout is ABI");

/* ------------------------------------------------------ ELF pre-check */

#if __SIZEOF_POINTER__ == 8
typedef Elf64_Ehdr Ehdr;
typedef Elf64_Phdr Phdr;
typedef Elf64_Shdr Shdr;
typedef Elf64_Sym Sym;
typedef Elf64_Dyn Dyn;
#define NATIVE_CLASS ELFCLASS64
#define SYM_TYPE(i)  ELF64_ST_TYPE(i)
#define SYM_BIND(i)  ELF64_ST_BIND(i)
#else
typedef Elf32_Ehdr Ehdr;
typedef Elf32_Phdr Phdr;
typedef Elf32_Shdr Shdr;
typedef Elf32_Sym Sym;
typedef Elf32_Dyn Dyn;
#define NATIVE_CLASS ELFCLASS32
#define SYM_TYPE(i)  ELF32_ST_TYPE(i)
#define SYM_BIND(i)  ELF32_ST_BIND(i)
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define NATIVE_DATA ELFDATA2LSB
#else
#define NATIVE_DATA ELFDATA2MSB
#endif

#if defined(__x86_64__)
#define NATIVE_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define NATIVE_MACHINE EM_AARCH64
#elif defined(__i386__)
#define NATIVE_MACHINE EM_386
#elif defined(__arm__)
#define NATIVE_MACHINE EM_ARM
#elif defined(__riscv)
#define NATIVE_MACHINE EM_RISCV
#elif defined(__powerpc64__)
#define NATIVE_MACHINE EM_PPC64
#elif defined(__s390x__)
#define NATIVE_MACHINE EM_S390
#endif

/* Is [off, off+len) inside a buffer of `size` bytes?  Overflow-safe. */
static bool in_bounds(uint64_t off, uint64_t len, size_t size)
{
	return off <= size && len <= size - off;
}

/* Check the descriptor head against this daemon's ABI.  Shared by the
 * file check and the in-memory re-check, so both say the same thing. */
int crd_plugin_check_head(const struct crd_plugin_head *h, char *why, size_t whylen)
{
	if (h->magic != CRUND_PLUGIN_MAGIC) {
		snprintf(why, whylen, "bad magic 0x%016" PRIx64 " (expected 0x%016" PRIx64 ")",
			 h->magic, CRUND_PLUGIN_MAGIC);
		return -EPROTO;
	}
	if (h->abi_major > CRUND_PLUGIN_ABI_MAJOR) {
		snprintf(why, whylen,
			 "ABI %u.%u is newer than this daemon's %u.%u (upgrade crund or rebuild "
			 "the plugin against this crund)",
			 (unsigned)h->abi_major, (unsigned)h->abi_minor,
			 (unsigned)CRUND_PLUGIN_ABI_MAJOR, (unsigned)CRUND_PLUGIN_ABI_MINOR);
		return -EPROTO;
	}
	if (h->abi_major < CRUND_PLUGIN_ABI_MAJOR) {
		snprintf(why, whylen,
			 "ABI %u.%u is older than this daemon's %u.%u (rebuild the plugin)",
			 (unsigned)h->abi_major, (unsigned)h->abi_minor,
			 (unsigned)CRUND_PLUGIN_ABI_MAJOR, (unsigned)CRUND_PLUGIN_ABI_MINOR);
		return -EPROTO;
	}
	if (h->abi_minor > CRUND_PLUGIN_ABI_MINOR) {
		snprintf(why, whylen,
			 "ABI minor %u newer than %u (this daemon supports ABI %u.0 to %u.%u; "
			 "upgrade crund)",
			 (unsigned)h->abi_minor, (unsigned)CRUND_PLUGIN_ABI_MINOR,
			 (unsigned)CRUND_PLUGIN_ABI_MAJOR, (unsigned)CRUND_PLUGIN_ABI_MAJOR,
			 (unsigned)CRUND_PLUGIN_ABI_MINOR);
		return -EPROTO;
	}
	/* Each minor's descriptor holds at least that minor's fields. */
	size_t need = crd_plugin_desc_min_size(h->abi_minor);
	if (h->size < need) {
		snprintf(why, whylen,
			 "descriptor too small (%" PRIu32 " bytes, ABI %u.%u needs %zu)", h->size,
			 h->abi_major, h->abi_minor, need);
		return -EPROTO;
	}
	if (h->size > CRD_PLUGIN_MAX_DESC_SIZE) {
		snprintf(why, whylen,
			 "descriptor size %" PRIu32 " is larger than the %d bytes a descriptor "
			 "may have",
			 h->size, CRD_PLUGIN_MAX_DESC_SIZE);
		return -EPROTO;
	}
	return 0;
}

/* The parsed pieces of an image the symbol search needs. */
struct elf_view {
	const unsigned char *img;
	size_t size;
	Ehdr eh;
};

static void read_phdr(const struct elf_view *v, size_t i, Phdr *ph)
{
	memcpy(ph, v->img + v->eh.e_phoff + i * sizeof(Phdr), sizeof *ph);
}

/* Map [vaddr, vaddr+len) to a file offset through the PT_LOAD segment
 * that holds it.  Returns 0, -ENOENT (not in any segment) or -ENODATA
 * (in a segment's zero-filled tail, i.e. not in the file). */
static int vaddr_to_offset(const struct elf_view *v, uint64_t vaddr, uint64_t len,
			   uint64_t *ret_off)
{
	for (size_t i = 0; i < v->eh.e_phnum; i++) {
		Phdr ph;
		read_phdr(v, i, &ph);
		if (ph.p_type != PT_LOAD || vaddr < ph.p_vaddr)
			continue;
		uint64_t rel = vaddr - ph.p_vaddr;
		if (rel >= ph.p_memsz)
			continue;
		if (rel > ph.p_filesz || ph.p_filesz - rel < len)
			return -ENODATA;
		if (!in_bounds(ph.p_offset, ph.p_filesz, v->size))
			return -ENOENT;
		*ret_off = ph.p_offset + rel;
		return 0;
	}
	return -ENOENT;
}

/* Look for the descriptor symbol among nsym symbols at file offset
 * symoff, names in the string table at stroff (strsz bytes).  Bounds
 * were checked by the caller.  Returns true and fills *ret. */
static bool find_symbol(const struct elf_view *v, uint64_t symoff, uint64_t nsym, uint64_t stroff,
			uint64_t strsz, Sym *ret)
{
	const char *strtab = (const char *)v->img + stroff;
	for (uint64_t k = 1; k < nsym; k++) {
		Sym sym;
		memcpy(&sym, v->img + symoff + k * sizeof(Sym), sizeof sym);
		if (sym.st_name >= strsz)
			continue;
		size_t room = strsz - sym.st_name;
		const char *name = strtab + sym.st_name;
		if (strnlen(name, room) == room)
			continue; /* unterminated */
		if (strcmp(name, CRUND_PLUGIN_SYMBOL) == 0 && sym.st_shndx != SHN_UNDEF) {
			*ret = sym;
			return true;
		}
	}
	return false;
}

/* The usual way: the SHT_DYNSYM section and its linked string table.
 * Returns 1 found, 0 not found, -ENOEXEC malformed, -ENOENT when there
 * are no section headers or no .dynsym (the caller tries PT_DYNAMIC). */
static int search_sections(const struct elf_view *v, Sym *ret, char *why, size_t whylen)
{
	const Ehdr *eh = &v->eh;
	if (eh->e_shoff == 0 || eh->e_shnum == 0)
		return -ENOENT;
	if (eh->e_shentsize != sizeof(Shdr) ||
	    !in_bounds(eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Shdr), v->size)) {
		snprintf(why, whylen, "malformed ELF section headers");
		return -ENOEXEC;
	}
	bool seen = false;
	for (size_t i = 0; i < eh->e_shnum; i++) {
		Shdr sh, strsh;
		memcpy(&sh, v->img + eh->e_shoff + i * sizeof(Shdr), sizeof sh);
		if (sh.sh_type != SHT_DYNSYM)
			continue;
		seen = true;
		if (sh.sh_entsize != sizeof(Sym) || !in_bounds(sh.sh_offset, sh.sh_size, v->size) ||
		    sh.sh_link >= eh->e_shnum) {
			snprintf(why, whylen, "malformed ELF dynamic symbol table");
			return -ENOEXEC;
		}
		memcpy(&strsh, v->img + eh->e_shoff + (size_t)sh.sh_link * sizeof(Shdr),
		       sizeof strsh);
		if (!in_bounds(strsh.sh_offset, strsh.sh_size, v->size)) {
			snprintf(why, whylen, "malformed ELF dynamic string table");
			return -ENOEXEC;
		}
		if (find_symbol(v, sh.sh_offset, sh.sh_size / sizeof(Sym), strsh.sh_offset,
				strsh.sh_size, ret))
			return 1;
	}
	return seen ? 0 : -ENOENT;
}

/* Number of dynamic symbols from DT_GNU_HASH: one past the highest
 * symbol index reachable from a bucket (the table has no count). */
static int gnu_hash_nsym(const struct elf_view *v, uint64_t off, uint64_t *ret_n)
{
	uint32_t hdr[4]; /* nbuckets, symoffset, bloom_size, bloom_shift */
	if (!in_bounds(off, sizeof hdr, v->size))
		return -ENOEXEC;
	memcpy(hdr, v->img + off, sizeof hdr);
	uint64_t buckets = off + sizeof hdr + (uint64_t)hdr[2] * sizeof(void *);
	if (!in_bounds(buckets, (uint64_t)hdr[0] * 4, v->size))
		return -ENOEXEC;
	uint64_t chains = buckets + (uint64_t)hdr[0] * 4;
	uint32_t max = 0;
	for (uint32_t b = 0; b < hdr[0]; b++) {
		uint32_t x;
		memcpy(&x, v->img + buckets + (uint64_t)b * 4, 4);
		if (x > max)
			max = x;
	}
	if (max == 0) {
		*ret_n = hdr[1];
		return 0;
	}
	if (max < hdr[1])
		return -ENOEXEC;
	/* Walk the last chain to its end (low bit set).  Bounded by the
	 * file size, so a chain without an end cannot loop forever. */
	for (uint64_t i = max;; i++) {
		uint64_t at = chains + (i - hdr[1]) * 4;
		if (!in_bounds(at, 4, v->size))
			return -ENOEXEC;
		uint32_t h;
		memcpy(&h, v->img + at, 4);
		if (h & 1) {
			*ret_n = i + 1;
			return 0;
		}
	}
}

/* Without section headers (sstrip'd objects; the loader never needs
 * them): the dynamic segment's DT_SYMTAB/DT_STRTAB, with the symbol
 * count from DT_HASH or DT_GNU_HASH.  Returns 1 found, 0 not found,
 * -ENOEXEC malformed. */
static int search_dynamic(const struct elf_view *v, Sym *ret, char *why, size_t whylen)
{
	uint64_t symtab = 0, strtab = 0, strsz = 0, hash = 0, gnu_hash = 0;
	bool have_dyn = false;
	for (size_t i = 0; i < v->eh.e_phnum && !have_dyn; i++) {
		Phdr ph;
		read_phdr(v, i, &ph);
		if (ph.p_type != PT_DYNAMIC)
			continue;
		have_dyn = true;
		if (!in_bounds(ph.p_offset, ph.p_filesz, v->size))
			goto malformed;
		size_t n = ph.p_filesz / sizeof(Dyn);
		for (size_t k = 0; k < n; k++) {
			Dyn d;
			memcpy(&d, v->img + ph.p_offset + k * sizeof(Dyn), sizeof d);
			if (d.d_tag == DT_NULL)
				break;
			switch (d.d_tag) {
			case DT_SYMTAB:
				symtab = d.d_un.d_ptr;
				break;
			case DT_STRTAB:
				strtab = d.d_un.d_ptr;
				break;
			case DT_STRSZ:
				strsz = d.d_un.d_val;
				break;
			case DT_HASH:
				hash = d.d_un.d_ptr;
				break;
			case DT_GNU_HASH:
				gnu_hash = d.d_un.d_ptr;
				break;
			case DT_SYMENT:
				if (d.d_un.d_val != sizeof(Sym))
					goto malformed;
				break;
			}
		}
	}
	if (!have_dyn || !symtab || !strtab || (!hash && !gnu_hash))
		return 0; /* no dynamic symbols at all */

	uint64_t symoff, stroff, hoff, nsym;
	if (vaddr_to_offset(v, strtab, strsz, &stroff) < 0 ||
	    vaddr_to_offset(v, hash ? hash : gnu_hash, 16, &hoff) < 0)
		goto malformed;
	if (hash) {
		uint32_t nchain;
		memcpy(&nchain, v->img + hoff + 4, 4);
		nsym = nchain;
	} else if (gnu_hash_nsym(v, hoff, &nsym) < 0) {
		goto malformed;
	}
	if (nsym > v->size / sizeof(Sym) ||
	    vaddr_to_offset(v, symtab, nsym * sizeof(Sym), &symoff) < 0)
		goto malformed;
	return find_symbol(v, symoff, nsym, stroff, strsz, ret) ? 1 : 0;
malformed:
	snprintf(why, whylen, "malformed ELF dynamic segment");
	return -ENOEXEC;
}

int crd_plugin_check_image(const void *image, size_t size, char *why, size_t whylen)
{
	struct elf_view v = {.img = image, .size = size};
	Ehdr *eh = &v.eh;
	if (size < sizeof *eh || memcmp(image, ELFMAG, SELFMAG) != 0) {
		snprintf(why, whylen, "not an ELF file");
		return -ENOEXEC;
	}
	memcpy(eh, image, sizeof *eh);
	if (eh->e_ident[EI_CLASS] != NATIVE_CLASS) {
		snprintf(why, whylen, "ELF class %d does not match this daemon's (%d-bit)",
			 eh->e_ident[EI_CLASS], NATIVE_CLASS == ELFCLASS64 ? 64 : 32);
		return -ENOEXEC;
	}
	if (eh->e_ident[EI_DATA] != NATIVE_DATA) {
		snprintf(why, whylen, "ELF byte order does not match this machine's");
		return -ENOEXEC;
	}
	if (eh->e_type != ET_DYN) {
		snprintf(why, whylen, "not a shared object (ELF type %u)", eh->e_type);
		return -ENOEXEC;
	}
#ifdef NATIVE_MACHINE
	if (eh->e_machine != NATIVE_MACHINE) {
		snprintf(why, whylen,
			 "built for another machine (ELF machine %u, this daemon is %u)",
			 eh->e_machine, NATIVE_MACHINE);
		return -ENOEXEC;
	}
#endif
	if (eh->e_phentsize != sizeof(Phdr) || eh->e_phnum == 0 ||
	    !in_bounds(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Phdr), size)) {
		snprintf(why, whylen, "malformed ELF program headers");
		return -ENOEXEC;
	}

	/* The dynamic symbol table is what dlsym() searches: a symbol only
	 * in .symtab would not be found after loading either. */
	Sym sym;
	int found = search_sections(&v, &sym, why, whylen);
	if (found == -ENOENT)
		found = search_dynamic(&v, &sym, why, whylen);
	if (found < 0)
		return found;
	if (!found) {
		snprintf(why, whylen, "not a crund plugin (no %s symbol)", CRUND_PLUGIN_SYMBOL);
		return -ENOEXEC;
	}
	if (SYM_BIND(sym.st_info) != STB_GLOBAL && SYM_BIND(sym.st_info) != STB_WEAK) {
		snprintf(why, whylen, "not a crund plugin (%s is not exported)",
			 CRUND_PLUGIN_SYMBOL);
		return -ENOEXEC;
	}
	if (SYM_TYPE(sym.st_info) != STT_OBJECT && SYM_TYPE(sym.st_info) != STT_NOTYPE) {
		snprintf(why, whylen, "not a crund plugin (%s is not a data object)",
			 CRUND_PLUGIN_SYMBOL);
		return -ENOEXEC;
	}
	if (sym.st_size != 0 && sym.st_size < sizeof(struct crd_plugin_head)) {
		snprintf(why, whylen, "descriptor too small (symbol of %" PRIu64 " bytes)",
			 (uint64_t)sym.st_size);
		return -EPROTO;
	}

	/* The head holds no pointers, so the file bytes are what will be in
	 * memory (relocations only patch the pointer fields). */
	uint64_t off = 0;
	int rc = vaddr_to_offset(&v, sym.st_value, sizeof(struct crd_plugin_head), &off);
	if (rc == -ENODATA) {
		snprintf(why, whylen, "bad magic (descriptor is in zero-filled memory)");
		return -EPROTO;
	}
	if (rc < 0) {
		snprintf(why, whylen, "%s points outside the file's loaded segments",
			 CRUND_PLUGIN_SYMBOL);
		return -ENOEXEC;
	}
	struct crd_plugin_head h;
	memcpy(&h, v.img + off, sizeof h);
	rc = crd_plugin_check_head(&h, why, whylen);
	if (rc < 0)
		return rc;
	if (sym.st_size != 0 && h.size > sym.st_size) {
		snprintf(why, whylen,
			 "descriptor claims %" PRIu32 " bytes but its symbol has %" PRIu64, h.size,
			 (uint64_t)sym.st_size);
		return -EPROTO;
	}
	return 0;
}
