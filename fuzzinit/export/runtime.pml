/* fuzzinit Promela runtime: the reference model (fuzzinit/model/*.py) and
 * the exploration rules (fuzzinit/orderings/schedule.py,
 * fuzzinit/explore/bfs.py) translated by hand, so that SPIN computes every
 * transition itself. The exporter (fuzzinit/export/promela.py) puts the
 * scenario's constants (M_*, FAIL_ON_*, sizes) before this text and its
 * tables, program and trigger guards and processes after it.
 *
 * Structure forced by Promela, said once here and again where it shows:
 * - Promela has no functions: every Python function is an inline with its
 *   results in out-parameters, and its temporaries are `hidden` globals
 *   (not in the state vector) named after the inline, since an inline
 *   cannot declare a local more than once per process.
 * - An event is one atomic sequence: the process's choice, then a few
 *   d_steps (event, step, apply: a single d_step would pass SPIN's
 *   MAXDSTEP). SPIN stores no state inside it, so each event is one
 *   transition. A `hidden` temporary lives inside one d_step only: pan
 *   does not restore hidden values when it backtracks, so what crosses
 *   from one d_step to the next (ev_out, step_warnings, st_before_*) is
 *   in the state vector and cleared at the end of the event, and the
 *   guards between d_steps read only the state and the constant tables.
 * - Promela ints are 32 bits: a 64-bit value (CR4, EFER, the FRED MSRs, the
 *   pinned bits, op arguments) is a _lo/_hi pair of ints holding bits 0-31
 *   and 32-63; an op's WRMSR value also has _ext = its bits above 63,
 *   clamped to -1..1, so that "not a 64-bit quantity" can be decided. CR0
 *   is one int (bit 31, PG, is its sign bit): its bits 63:32 only ever
 *   #GP, so a write's high word is passed to the check and never stored.
 * - No recursion: delivery._double_fault's call back into raise_event (a
 *   tail call) restarts raise_event's loop instead.
 * - Python's early returns are if/else chains; every `if` has exclusive
 *   guards or an else, so that a d_step never has a choice to make.
 * - The causal chain and WARN texts are not modelled: only the outcome and
 *   whether a WARN was seen, which is all the oracle reads.
 */

/* --- outcomes (model/outcome.py) --------------------------------------- */
#define OK                0
#define WARN              1
#define TRIPLE_FAULT      2
#define GUEST_TERMINATED  3
#define HANG              4
#define UNHANDLED         5
#define NEVER_ONLINE      6
#define INVALID           7
#define PIN_CLEARED       8

/* --- per-CPU values and flags (model/machine.py) ------------------------- */
#define IDT_NONE     0
#define IDT_BRINGUP  1
#define IDT_EARLY    2
#define IDT_FULL     3
#define IDT_NULL     4
#define IDT_REAL     5
#define VIA_FRED     6
#define GHCB_NONE    0
#define GHCB_BOOT    1
#define GHCB_PERCPU  2
#define PERCPU_FRED_RSP0  1      /* machine.PERCPU_FRED_RSP0 */
#define FRED_STACK_LO     65536  /* ops_msr.FRED_STACK, bits 0-31 */
#define FRED_STACK_HI     (-512) /* ... bits 32-63 */
#define STARTED       1
#define ONLINE        2
#define NMI_BLOCKED   4
#define VE_PENDING    8
#define VC_BOOT_GATE 16
#define UCODE        32
#define CS32         64
#define GDT_NULL     128
#define IBT_ON       256
#define AC_SET       512
#define APIC_EXTD    1024   /* IA32_APIC_BASE.EXTD: x2APIC mode (apic.py) */
#define APIC_OFF     2048   /* IA32_APIC_BASE.EN = 0 */
#define APIC_LOCKED      2  /* Machine.apic values */
#define APIC_XAPIC_ONLY  3
#define SS_KERNEL   8192   /* SS holds __KERNEL_DS (loadsegment ss) */
/* global flags */
#define ALT_PATCHED        1
#define GHCBS_ALLOCATED    2
#define BOOT_GHCB          4
#define WARNED_CR4         8
#define WARNED_CR0        16
#define CONSOLE_ON        32
#define GHCBS_INITIALIZED 64
#define WARNED_CR4_INIT  128
#define WARNED_RDMSR     256
#define WARNED_WRMSR     512
#define ALT_FSGSBASE    2048   /* patched while the kernel had FSGSBASE */
#define CAP_CLEARED_SHIFT 16   /* bit 16 + i: X86_FEATURE_(feature bit i) cleared */
/* platforms, pinning gates */
#define BARE     0
#define SEV_ES   1
#define SEV_SNP  2
#define TDX      3
#define PIN_STATIC_KEY 0
#define PIN_ONLINE     1
/* op kinds (each defined in fuzzinit/model/ops_*.py) */
#define MOV_CR0                  0
#define MOV_CR4                  1
#define MOV_CR3                  2
#define CR0_SET                  3
#define CR0_CLEAR                4
#define CR4_SET                  5
#define CR4_CLEAR                6
#define CR4_INIT                 7
#define SETUP_CR_PINNING         8
#define WRMSR                    9
#define RDMSR                   10
#define LIDT                    11
#define LTR                     12
#define TSS_SETUP_IST           13
#define SETUP_GHCB              14
#define SEV_ES_INIT_VC_HANDLING 15
#define PRINTK                  16
#define CPUID                   17
#define PORT_IO                 18
#define MMIO                    19
#define RDGSBASE                20
#define NMI_EVENT               21
#define PF_EVENT                22
#define VE_INFO                 23
#define START                   24
#define ONLINE_OP               25
#define WAIT_ONLINE             26
#define PATCH_ALTERNATIVES      27
#define CONSOLE_INIT            28
#define NOP                     29
#define CLEAR_ONLINE            30
#define CR4_GADGET              31
#define UD2                     32
#define SEV_ES_TERMINATE        33
#define LOAD_MICROCODE          34
#define MCE_EVENT               35
#define INT3                    36
#define DIV0                    37
#define INT_N                   38
#define RAISE                   39
#define RDMSR_SAFE              40
#define WRMSR_SAFE              41
#define LJMP                    42
#define LGDT                    43
#define LOADSEGMENT             44
#define CALL_INDIRECT           45
#define STAC                    46
#define CLAC                    47
#define ACCESS_USER             48
#define CLEAR_CPU_CAP           49
#define FRED_RSP0            50
/* feature bits of M_FEATURES */
#define FEATURE_FRED      1
#define FEATURE_SMAP      8
#define FEATURE_FSGSBASE 32
#define FEATURE_PCID     64
#define FEATURE_CET    8192
/* machine.kernel_has: cpu_feature_enabled(X86_FEATURE_x) */
#define KERNEL_HAS(f)  ((M_FEATURES & (f)) != 0 && \
                        (g_flags & ((f) << CAP_CLEARED_SHIFT)) == 0)
/* exit reasons */
#define R_NONE     0
#define R_PORT_IO  1
#define R_CPUID    2
#define R_MSR      3
#define R_MMIO     4
#define R_WARN     5
#define R_BUG      6
#define R_CFI      7
#define R_CR4      8
#define R_SEG      9
#define R_IBT_SELFTEST 10

/* --- architecture (model/arch.py) ---------------------------------------- */
#define CR0_PE   1
#define CR0_WP   65536
#define CR0_PG   (-2147483647 - 1)      /* 1 << 31: the sign bit */
#define CR0_NW   536870912
#define CR0_CD   1073741824
#define CR0_IGNORED 536543168            /* 0x1FFAFFC0: bits 6-15, 17, 19-28 */
#define CR4_PAE       32                /* bit 5 */
#define CR4_MCE       64                /* bit 6 */
#define CR4_LA57      4096              /* bit 12 */
#define CR4_FSGSBASE  65536             /* bit 16 */
#define CR4_PCIDE     131072            /* bit 17 */
#define CR4_CET       8388608           /* bit 23 */
#define CR4_SMAP      2097152           /* bit 21 */
#define CR4_LASS      134217728         /* bit 27 */
#define CR4_FRED_HI   1                 /* bit 32: bit 0 of the _hi word */
#define EFER_SCE   1
#define EFER_LME   256
#define EFER_LMA   1024
#define EFER_RESERVED_LO (-4193538)   /* 0xFFC002FE: bits 1-7, 9, 22-31 */
#define EFER_NXE   2048
#define FRED_CONFIG_RESERVED 2100       /* 0x834 */
#define MSR_FRED_RSP0     460           /* 0x1CC */
#define MSR_FRED_RSP3     463           /* 0x1CF */
#define MSR_FRED_STKLVLS  464           /* 0x1D0 */
#define MSR_FRED_SSP1     465           /* 0x1D1 */
#define MSR_FRED_CONFIG   468           /* 0x1D4 */
#define MSR_S_CET         1698          /* 0x6A2 */
#define S_CET_ENDBR_EN    4
#define S_CET_RESERVED    960           /* 0x3C0 */
#define MSR_EFER          (-1073741696) /* 0xC0000080 as a signed int */
/* apic.py: IA32_APIC_BASE and the x2APIC MSRs */
#define MSR_APIC_BASE     27            /* 0x1B */
#define APIC_BASE_EXTD    1024          /* bit 10 */
#define APIC_BASE_EN      2048          /* bit 11 */
#define APIC_BASE_RESERVED_LO 767       /* 0x2FF: bits 0-7, 9 */
#define APIC_BASE_RESERVED_HI (-1048576) /* 0xFFF00000: bits 52-63 */
#define X2APIC_FIRST      2048          /* 0x800 */
#define X2APIC_LAST       3071          /* 0xBFF */
#define X2APIC_EOI        2059          /* 0x80B */
#define X2APIC_ESR        2088          /* 0x828 */
#define X2APIC_ICR        2096          /* 0x830 */
#define X2APIC_SELF_IPI   2111          /* 0x83F */
/* apic.py's 64-bit masks (bit i: MSR 0x800 + i) as _LO (0x800-0x81F) and
 * _HI (0x820-0x83F) words */
#define X2APIC_READABLE_LO   (-23284)      /* 0xFFFFA50C */
#define X2APIC_READABLE_HI   1140687359    /* 0x43FD81FF */
#define X2APIC_WRITABLE_LO   35072         /* 0x00008900 */
#define X2APIC_WRITABLE_HI   (-1040350976) /* 0xC1FD8100 */
#define TDX_VE_READ_LO       40972         /* 0x0000A00C */
#define TDX_VE_READ_HI       1207795968    /* 0x47FD8100 */
#define TDX_VE_WRITE_LO      32768         /* 0x00008000 */
#define TDX_VE_WRITE_HI      1174241536    /* 0x45FD8100 */
#define TDX_NO_EXIT_LO       (-41216)      /* 0xFFFF5F00 */
#define TDX_NO_EXIT_HI       (-2147483393) /* 0x800000FF */
/* vectors */
#define DE   0
#define DB   1
#define NMI  2
#define UD   6
#define DF   8
#define TS  10
#define GP  13
#define SS  12
#define PF  14
#define MC  18
#define VE  20
#define CP  21
#define VC  29
/* exception classes */
#define BENIGN           0
#define CONTRIBUTORY     1
#define PAGE_FAULT_CLASS 2
/* delivery.try_deliver's answers besides a vector */
#define NO_FAULT       (-1)
#define FRED_NO_ENTRY  (-2)
#define LANDS_UNKNOWN  (-3)

/* run.py: long mode as the 64-bit entry finds it */
#define ENTRY_CR0   (CR0_PE | CR0_WP | CR0_PG)
#define ENTRY_EFER  (EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE)
#define IST_SLOTS_SET 62                /* 0b111110 */

/* Machine.__init__'s derived fields */
#define M_SEV            (M_PLATFORM == SEV_ES || M_PLATFORM == SEV_SNP)
#define M_CET_ENUMERATED ((M_FEATURES & FEATURE_CET) != 0)
#define M_TERMINATED     (M_TERMINATE_HANGS -> HANG : GUEST_TERMINATED)

/* --- the model's state (machine.py's flat int layout, by name) ------------ */
typedef Cpu {
  int cr0;                                  /* F_CR0 */
  int cr3;                                  /* F_CR3: CR3[11:0] */
  int cr4_lo; int cr4_hi;                   /* F_CR4 */
  int efer_lo; int efer_hi;                 /* F_EFER */
  int fred_config_lo; int fred_config_hi;   /* F_FRED_CONFIG */
  int fred_stklvls_lo; int fred_stklvls_hi; /* F_FRED_STKLVLS */
  int fred_rsp_lo[4]; int fred_rsp_hi[4];   /* F_FRED_RSP0..3 */
  byte idt;                                 /* F_IDT */
  byte tss;                                 /* F_TSS */
  byte ghcb;                                /* F_GHCB */
  int flags;                                /* F_FLAGS */
  byte percpu                               /* F_PERCPU: kernel per-CPU
                                               variables (ops_percpu.py) */
};
Cpu cpu[NCPU];
bool g_key;                                 /* G_KEY */
int g_pinned_lo; int g_pinned_hi;           /* G_PINNED_BITS */
int g_flags;                                /* G_FLAGS */

/* --- the schedule's progress (Schedule.snapshot) and bfs's extra state ---- */
bool s_done[NSLOTS];         /* Schedule.done, all CPUs' slots in a row */
short s_first[NCPU];         /* Schedule.first (a function of done) */
bool s_started[NCPU];      /* Schedule.started */
bool s_online[NCPU];       /* Schedule.online */
byte s_left[NTRIGGERS];      /* Schedule.left */
int bfs_used;             /* bfs: triggers used */
bool bfs_warned;         /* bfs: a WARN seen */
bool halted;               /* a run ended with an outcome not in fail_on */

/* An event's values that live across its d_steps: in the state vector, so
 * that pan restores them when it backtracks, and 0 between events. */
int st_before_lo; int st_before_hi;   /* run.step's `before` */
byte ev_out;                          /* the event's outcome */
byte step_warnings;                   /* len(warnings) for this step */

/* --- the compiled scenario's tables (Machine.op_*, Scenario.programs) ----- */
hidden byte op_kind[NOPS];
hidden int op_a_lo[NOPS]; hidden int op_a_hi[NOPS];
hidden int op_b_lo[NOPS]; hidden int op_b_hi[NOPS]; hidden int op_b_ext[NOPS];
hidden int intercepted_msrs[NINTERCEPTED];
hidden int absent_msrs[NABSENT];
hidden int microcode_msrs[NMICROCODE];
hidden int readonly_msrs[NREADONLY];
hidden short prog_len[NCPU];   /* len(Scenario.programs[c]) */
hidden short prog_off[NCPU];   /* where cpu c's slots start in s_done[] */

/* Named so that SPIN's error message names the failing outcome. */
hidden byte fail_triple_fault; hidden byte fail_guest_terminated;
hidden byte fail_hang; hidden byte fail_unhandled; hidden byte fail_warn;
hidden byte fail_never_online; hidden byte fail_pin_cleared;
hidden byte internal_invalid_after_guard;

/* Temporaries of the inlines below (see the header comment). */
hidden byte cw_lm; hidden int cn_top; hidden byte fm_canon;
hidden short sl_shift;
hidden byte td_level; hidden byte td_ist; hidden int td_lim;
hidden int vc_g; hidden byte vc_boot;
hidden short re_vec; hidden byte re_int; hidden byte re_reason;
hidden byte re_state; hidden short re_v; hidden byte re_first;
hidden byte re_second; hidden byte re_fd; hidden byte re_n;
hidden short re_fault; hidden byte re_via; hidden byte re_out;
hidden short re_follow; hidden byte re_pair;
hidden short re_dv; hidden byte re_dreason; hidden byte re_dfd;
hidden short it_vec;
hidden int m4_lo; hidden int m4_hi; hidden byte m4_faults;
hidden int m0_v; hidden byte m0_faults;
hidden byte pa_out;
hidden int nw4_lo; hidden int nw4_hi; hidden byte nw4_act;
hidden int nw0_v; hidden byte nw0_act;
hidden byte ci_act;
hidden int wm_msr; hidden int wm_ext; hidden int wm_lo; hidden int wm_hi;
hidden byte wm_icpt; hidden byte wm_why; hidden byte wm_gp;
hidden int wm_old; hidden int wm_new;
hidden int rm_msr; hidden byte rm_icpt; hidden short rm_warn; hidden short wm_warn;
hidden short mg_flag; hidden byte mc_d;
hidden byte xa_r; hidden byte xa_t; hidden byte rm_gp; hidden byte ab_en; hidden byte ab_extd;
hidden byte ap_kind; hidden int ap_a_lo; hidden int ap_a_hi;
hidden int ap_b_lo; hidden int ap_b_hi; hidden int ap_b_ext;
hidden int ap_flags; hidden byte ap_call;
hidden byte ap_reason; hidden byte ap_vector;
hidden int ap_lo; hidden int ap_hi;
hidden byte pc_lost;
hidden short wt_c; hidden byte wt_unfinished;
hidden short ix;

/* ====================================================================== */
/* arch.py                                                                */
/* ====================================================================== */

inline exception_class(vector, out) {   /* arch.exception_class */
  if
  :: vector == DE || (TS <= vector && vector <= GP) -> out = CONTRIBUTORY
  :: vector == CP && M_CET_ENUMERATED -> out = CONTRIBUTORY
  :: vector == PF || vector == VE -> out = PAGE_FAULT_CLASS
  :: else -> out = BENIGN
  fi
}

inline double_fault_pair(fst, snd, out) {   /* arch.double_fault_pair */
  out = ((fst == CONTRIBUTORY && snd == CONTRIBUTORY) ||
         (fst == PAGE_FAULT_CLASS &&
          (snd == CONTRIBUTORY || snd == PAGE_FAULT_CLASS)))
}

/* arch.cr4_write_faults: whether the write faults (the reason text is not
 * modelled); each line is one of its rules, in its order. */
inline cr4_write_faults(o_lo, n_lo, n_hi, cr0v, cr3v, eferv, out) {
  cw_lm = (eferv & EFER_LMA) != 0;
  out = (((n_lo & ~M_CR4_ALLOWED_LO) != 0 || (n_hi & ~M_CR4_ALLOWED_HI) != 0)
     || (cw_lm && (n_lo & CR4_PAE) == 0)
     || (cw_lm && ((o_lo ^ n_lo) & CR4_LA57) != 0)
     || ((n_lo & CR4_PCIDE) != 0 && (o_lo & CR4_PCIDE) == 0 &&
         (!cw_lm || (cr3v & 4095) != 0))
     || ((n_lo & CR4_CET) != 0 && (cr0v & CR0_WP) == 0)
     || ((n_hi & CR4_FRED_HI) != 0 && !cw_lm))
}

inline cr0_write_faults(o, n, n_hi, cr4v, eferv, cs32, out) {   /* arch.cr0_write_faults */
  out = (n_hi != 0 || ((n & CR0_NW) != 0 && (n & CR0_CD) == 0)
     || ((n & CR0_PG) != 0 && (n & CR0_PE) == 0)
     || ((eferv & EFER_LMA) != 0 && (o & CR0_PG) != 0 && (n & CR0_PG) == 0
         && (!cs32 || (cr4v & CR4_PCIDE) != 0))    /* leaving IA-32e mode */
     || ((eferv & EFER_LME) != 0 && (o & CR0_PG) == 0 && (n & CR0_PG) != 0
         && ((cr4v & CR4_PAE) == 0 || !cs32))      /* entering it */
     || ((cr4v & CR4_CET) != 0 && (n & CR0_WP) == 0))
}

/* arch.canonical48 on a value in [0, 2**64): bits 47..63 are bits 15..31
 * of the _hi word. */
inline canonical48(hi, out) {   /* arch.canonical48 */
  cn_top = (hi >> 15) & 131071;
  out = (cn_top == 0 || cn_top == 131071)
}

inline is_fred_msr(number, out) {   /* arch.is_fred_msr */
  out = (MSR_FRED_RSP0 <= number && number <= MSR_FRED_CONFIG)
}

/* arch.fred_msr_write_faults; canonical48(value & ~0xFFF) for FRED_CONFIG
 * reads the same _hi word as canonical48(value). */
inline fred_msr_write_faults(number, ext, lo, hi, out) {
  if
  :: ext != 0 -> out = true                       /* not a 64-bit quantity */
  :: else ->
     canonical48(hi, fm_canon);
     if
     :: number == MSR_FRED_CONFIG ->
        out = ((lo & FRED_CONFIG_RESERVED) != 0 || !fm_canon)
     :: MSR_FRED_RSP0 <= number && number <= MSR_FRED_RSP3 ->
        out = ((lo & 63) != 0 || !fm_canon)
     :: MSR_FRED_SSP1 <= number && number < MSR_FRED_CONFIG ->
        out = ((lo & 7) != 0 || !fm_canon)
     :: else -> out = false
     fi
  fi
}

/* arch.fred_stack_level: (stklvls >> 2v) & 3 over the _lo/_hi pair. */
inline fred_stack_level(c, vector, out) {   /* arch.fred_stack_level */
  sl_shift = 2 * vector;
  if
  :: sl_shift < 32 -> out = (cpu[c].fred_stklvls_lo >> sl_shift) & 3
  :: sl_shift >= 32 && sl_shift < 64 ->
     out = (cpu[c].fred_stklvls_hi >> (sl_shift - 32)) & 3
  :: else -> out = 0
  fi
}

/* ====================================================================== */
/* delivery.py                                                            */
/* ====================================================================== */

inline ist_of_vector(vector, out) {   /* delivery.IST_OF_VECTOR.get(v, 0) */
  if
  :: vector == DF -> out = 1
  :: vector == NMI -> out = 2
  :: vector == DB -> out = 3
  :: vector == MC -> out = 4
  :: vector == VC -> out = 5
  :: else -> out = 0
  fi
}

/* delivery._outside_long_mode, for the named IDTs (explicit tables are
 * not exported): real mode reads 4-byte IVT entries, protected mode
 * 8-byte gates; _LIMITS are the named IDTs' limits. */
inline outside_long_mode(c, vector, out) {   /* delivery._outside_long_mode */
  if
  :: cpu[c].idt == IDT_NONE -> td_lim = 65535
  :: cpu[c].idt == IDT_BRINGUP -> td_lim = 511
  :: cpu[c].idt == IDT_EARLY || cpu[c].idt == IDT_FULL -> td_lim = 4095
  :: cpu[c].idt == IDT_NULL -> td_lim = 0
  :: else -> td_lim = 1023                      /* IDT_REAL */
  fi;
  if
  :: (cpu[c].cr0 & CR0_PE) == 0 ->              /* real mode */
     if
     :: 4 * vector + 3 > td_lim -> out = GP
     :: else -> out = LANDS_UNKNOWN
     fi
  :: else ->
     if
     :: 8 * vector + 7 > td_lim -> out = GP
     :: cpu[c].idt == IDT_NONE || cpu[c].idt == IDT_REAL -> out = GP
     :: else ->
        if
        :: (vector & 1) == 0 && (cpu[c].flags & GDT_NULL) == 0 &&
           (cpu[c].idt == IDT_FULL ||
            (cpu[c].idt == IDT_EARLY && (vector >> 1) < 32) ||
            (cpu[c].idt == IDT_BRINGUP && (vector >> 1) == VC && M_SEV)) ->
           out = LANDS_UNKNOWN
        :: else -> out = GP
        fi
     fi
  fi
}

inline try_deliver(c, vector, out) {   /* delivery.try_deliver */
  if
  :: (cpu[c].efer_lo & EFER_LMA) == 0 -> outside_long_mode(c, vector, out)
  :: (cpu[c].efer_lo & EFER_LMA) != 0 && (cpu[c].cr4_hi & CR4_FRED_HI) != 0 ->
     if
     :: (cpu[c].fred_config_lo & ~4095) == 0 && cpu[c].fred_config_hi == 0 ->
        out = FRED_NO_ENTRY                      /* fred_entry_page == 0 */
     :: else ->
        fred_stack_level(c, vector, td_level);
        if
        :: td_level > 0 && cpu[c].fred_rsp_lo[td_level] == 0 &&
           cpu[c].fred_rsp_hi[td_level] == 0 -> out = PF
        :: else -> out = NO_FAULT
        fi
     fi
  :: else ->
     if
     :: cpu[c].idt == IDT_NONE -> out = GP
     :: cpu[c].idt == IDT_NULL -> out = GP
     :: cpu[c].idt == IDT_REAL -> out = GP
     :: cpu[c].idt == IDT_BRINGUP ->
        if       /* the gate's __KERNEL_CS beyond a GDT limit 0: #GP (_gate_cs) */
        :: vector == VC && (M_PLATFORM == SEV_ES || M_PLATFORM == SEV_SNP) &&
           (cpu[c].flags & GDT_NULL) == 0 -> out = NO_FAULT
        :: else -> out = GP
        fi
     :: cpu[c].idt == IDT_EARLY ->
        if
        :: vector < 32 && (cpu[c].flags & GDT_NULL) == 0 -> out = NO_FAULT
        :: else -> out = GP
        fi
     :: else ->                                  /* IDT_FULL */
        ist_of_vector(vector, td_ist);
        if
        :: (cpu[c].flags & GDT_NULL) != 0 -> out = GP
        :: (cpu[c].flags & GDT_NULL) == 0 && td_ist != 0 &&
           ((cpu[c].tss & 1) == 0 || ((cpu[c].tss >> td_ist) & 1) == 0) ->
           out = PF
        :: else -> out = NO_FAULT
        fi
     fi
  fi
}

inline via_of(c, out) {   /* raise_event's `via`: VIA_FRED or the IDT */
  if
  :: (cpu[c].cr4_hi & CR4_FRED_HI) != 0 && (cpu[c].efer_lo & EFER_LMA) != 0 ->
     out = VIA_FRED
  :: else -> out = cpu[c].idt
  fi
}

/* delivery.raise_event, with delivery._double_fault as its state RE_DF.
 * Promela has no recursion and every inline is expanded where it is used,
 * so: _double_fault's `return raise_event(m, st, base, follow, False,
 * R_NONE)`, a tail call, restarts the loop at RE_START with the new
 * vector; and the loop's delivery (try_deliver, then handle) is written
 * once and serves both the `for _ in range(8)` loop (RE_LOOP, counted in
 * re_n) and _double_fault's delivery of #DF (RE_DF). */
#define RE_START 0
#define RE_LOOP  1
#define RE_DF    2
inline raise_event(c, vector, interrupt, reason, out) {   /* delivery.raise_event */
  re_vec = vector; re_int = interrupt; re_reason = reason;
  re_state = RE_START;
  do
  :: re_state == RE_START ->
     if
     :: re_vec == VE && M_PLATFORM == TDX &&
        (cpu[c].flags & VE_PENDING) != 0 ->
        re_state = RE_DF          /* #VE with the previous one unread: #DF */
     :: else ->
        if
        :: re_vec == VE && M_PLATFORM == TDX ->
           cpu[c].flags = cpu[c].flags | VE_PENDING
        :: else -> skip
        fi;
        if
        :: re_int -> re_first = BENIGN
        :: else -> exception_class(re_vec, re_first)
        fi;
        re_v = re_vec; re_fd = false; re_n = 0; re_state = RE_LOOP
     fi
  :: re_state == RE_LOOP && re_n >= 8 ->
     out = TRIPLE_FAULT; break                /* "event loop did not settle" */
  :: re_state == RE_DF || (re_state == RE_LOOP && re_n < 8) ->
     if
     :: re_state == RE_DF ->      /* _double_fault: #DF, from delivery */
        re_dv = DF; re_dreason = R_NONE; re_dfd = true
     :: else ->
        re_n++; re_dv = re_v; re_dreason = re_reason; re_dfd = re_fd
     fi;
     try_deliver(c, re_dv, re_fault);
     if
     :: re_fault == NO_FAULT ->
        via_of(c, re_via);
        handle(c, re_dv, re_via, re_dreason, re_dfd, re_out, re_follow);
        if
        :: re_follow < 0 -> out = re_out; break
        :: re_follow >= 0 && re_state == RE_DF ->
           /* _double_fault: return raise_event(follow, False, R_NONE) */
           re_vec = re_follow; re_int = false; re_reason = R_NONE;
           re_state = RE_START
        :: else ->             /* the handler itself faulted: a new event */
           re_v = re_follow; exception_class(re_v, re_first); re_fd = false
        fi
     :: re_fault == LANDS_UNKNOWN && re_state == RE_DF ->
        out = UNHANDLED; break     /* #DF's gate leads where the model stops */
     :: re_fault != NO_FAULT && re_fault != LANDS_UNKNOWN && re_state == RE_DF ->
        out = TRIPLE_FAULT; break  /* FRED_NO_ENTRY or a fault on #DF: shutdown */
     :: re_fault == FRED_NO_ENTRY && re_state == RE_LOOP ->
        out = TRIPLE_FAULT; break  /* _fred_no_entry */
     :: re_fault == LANDS_UNKNOWN && re_state == RE_LOOP ->
        out = UNHANDLED; break     /* a gate whose target is not modelled */
     :: else ->
        exception_class(re_fault, re_second);
        double_fault_pair(re_first, re_second, re_pair);
        if
        :: re_pair -> re_state = RE_DF
        :: else ->                          /* handled serially */
           re_v = re_fault; re_first = re_second; re_fd = true
        fi
     fi
  od;
  skip   /* `break` lands here, inside any enclosing d_step */
}

/* ====================================================================== */
/* handlers.py                                                            */
/* ====================================================================== */

inline terminate(out) {   /* handlers.terminate */
  out = M_TERMINATED
}

/* handlers._vmm_communication: (outcome, follow-up vector) as two
 * out-parameters, as handle's. */
inline vmm_communication(c, via, reason, out, follow) {
  vc_g = g_flags;
  if
  :: via == IDT_BRINGUP && (cpu[c].flags & VC_BOOT_GATE) == 0 ->
     if
     :: reason == R_CPUID -> out = OK           /* vc_no_ghcb serves CPUID */
     :: else -> terminate(out)
     fi
  :: else ->
     vc_boot = (via == IDT_EARLY ||
                (via == IDT_BRINGUP && (vc_g & GHCBS_ALLOCATED) == 0));
     if
     :: vc_boot ->
        if
        :: (vc_g & BOOT_GHCB) != 0 -> out = OK
        :: (vc_g & BOOT_GHCB) == 0 && via == IDT_EARLY ->
           out = UNHANDLED          /* NULL boot_ghcb: #PF, the early handler halts */
        :: else -> out = OK; follow = PF   /* NULL boot_ghcb: #PF, a new event */
        fi
     :: !vc_boot && M_BOOT_GHCB_FALLBACK && (vc_g & GHCBS_INITIALIZED) == 0 ->
        if
        :: (vc_g & BOOT_GHCB) != 0 -> out = OK
        :: else -> terminate(out)
        fi
     :: else ->
        if
        :: (vc_g & GHCBS_ALLOCATED) == 0 -> out = UNHANDLED
        :: (vc_g & GHCBS_ALLOCATED) != 0 && M_PLATFORM == SEV_SNP &&
           cpu[c].ghcb != GHCB_PERCPU -> out = GUEST_TERMINATED
        :: else -> out = OK
        fi
     fi
  fi
}

inline is_paranoid(vector, out) {   /* handlers.PARANOID */
  out = (vector == DB || vector == NMI || vector == DF || vector == MC ||
         vector == VC)
}

/* handlers.handle: (outcome, follow-up vector) as two out-parameters. */
hidden byte h_paranoid; hidden byte h_done;
inline handle(c, vector, via, reason, from_delivery, out, follow) {
  follow = -1; h_done = false;
  is_paranoid(vector, h_paranoid);
  if
  :: via == VIA_FRED && vector == VC && !M_FRED_VC_DISPATCH ->
     out = UNHANDLED; h_done = true     /* fred_hwexc() has no #VC case */
  :: via == IDT_FULL && h_paranoid && (g_flags & ALT_FSGSBASE) != 0 &&
     (cpu[c].cr4_lo & CR4_FSGSBASE) == 0 ->
     out = OK; follow = UD; h_done = true    /* RDGSBASE in paranoid_entry */
  :: else -> skip
  fi;
  if
  :: h_done -> skip
  :: !h_done && (from_delivery || vector == DF) -> out = UNHANDLED
  :: !h_done && !(from_delivery || vector == DF) ->
     if
     :: vector >= 32 && via == IDT_FULL -> out = OK   /* INT n: common_interrupt */
     :: vector == NMI -> out = OK
     :: vector == PF && via == IDT_FULL && KERNEL_HAS(FEATURE_FRED) ->
        out = UNHANDLED   /* exc_page_fault reads FRED event data */
     :: vector == PF && !(via == IDT_FULL && KERNEL_HAS(FEATURE_FRED)) ->
        out = OK
     :: vector == CP && reason == R_IBT_SELFTEST && via != IDT_EARLY ->
        if   /* the selftest's #CP: ERETS restores WFE unless cleared */
        :: via == VIA_FRED && !M_IBT_CLEAR_FRED_WFE -> out = HANG
        :: else -> out = OK
        fi
     :: vector == GP && reason == R_MSR -> out = OK   /* ex_handler_msr fixup */
     :: vector == GP && reason == R_SEG -> out = OK   /* loadsegment fixup */
     :: vector == UD && reason == R_WARN -> out = OK  /* report_bug: WARN */
     :: vector == MC && via == IDT_EARLY -> out = UNHANDLED  /* PANIC, halt */
     :: vector == MC && via != IDT_EARLY -> out = OK  /* survived */
     :: vector == VC -> vmm_communication(c, via, reason, out, follow)
     :: vector == VE ->
        cpu[c].flags = cpu[c].flags & ~VE_PENDING;
        if
        :: reason == R_CR4 -> out = UNHANDLED   /* no handler emulates it */
        :: reason != R_CR4 && via == IDT_EARLY && reason != R_PORT_IO ->
           out = UNHANDLED
        :: else -> out = OK
        fi
     :: else -> out = UNHANDLED          /* die(): no fixup */
     fi
  fi
}

/* ====================================================================== */
/* platform.py                                                            */
/* ====================================================================== */

inline exit_vector(reason, out) {   /* platform.exit_vector */
  if
  :: M_SEV -> out = VC
  :: !M_SEV && M_PLATFORM == TDX && reason != R_CPUID -> out = VE
  :: else -> out = -1
  fi
}

inline intercepted(c, reason, out) {   /* platform.intercepted */
  exit_vector(reason, it_vec);
  if
  :: it_vec < 0 -> out = OK
  :: else -> raise_event(c, it_vec, false, reason, out)
  fi
}

inline printk(c, out) {   /* platform.printk */
  if
  :: !M_CONSOLE_PORT_IO || (g_flags & CONSOLE_ON) == 0 -> out = OK
  :: else ->
     if
     :: (cpu[c].flags & ONLINE) == 0 && !M_CONSOLE_ANYTIME -> out = OK
     :: else -> intercepted(c, R_PORT_IO, out)
     fi
  fi
}

inline setup_ghcb(c) {   /* platform.setup_ghcb */
  if
  :: !M_SEV -> skip
  :: else ->
     if
     :: (g_flags & GHCBS_ALLOCATED) != 0 ->
        cpu[c].ghcb = GHCB_PERCPU; g_flags = g_flags | GHCBS_INITIALIZED
     :: else ->
        g_flags = g_flags | BOOT_GHCB; cpu[c].ghcb = GHCB_BOOT
     fi
  fi
}

/* ====================================================================== */
/* pinning.py                                                             */
/* ====================================================================== */

inline mov_cr4(c, v_lo, v_hi, out) {   /* pinning.mov_cr4 */
  m4_lo = v_lo; m4_hi = v_hi;
  cr4_write_faults(cpu[c].cr4_lo, m4_lo, m4_hi, cpu[c].cr0, cpu[c].cr3,
                   cpu[c].efer_lo, m4_faults);
  if
  :: M_PLATFORM == TDX && (cpu[c].cr4_lo & CR4_MCE) != 0 &&
     (m4_lo & CR4_MCE) == 0 ->
     raise_event(c, VE, false, R_CR4, out)   /* TDX keeps CR4.MCE set */
  :: else ->
     if
     :: m4_faults -> raise_event(c, GP, false, R_NONE, out)
     :: else -> cpu[c].cr4_lo = m4_lo; cpu[c].cr4_hi = m4_hi; out = OK
     fi
  fi
}

inline mov_cr0(c, v, v_hi, out) {   /* pinning.mov_cr0 */
  m0_v = v;
  cr0_write_faults(cpu[c].cr0, m0_v, v_hi, cpu[c].cr4_lo, cpu[c].efer_lo,
                   (cpu[c].flags & CS32) != 0, m0_faults);
  if
  :: m0_faults -> raise_event(c, GP, false, R_NONE, out)
  :: else ->
     if          /* EFER.LMA follows PG while LME = 1 (SDM Vol. 3A 10.8.5) */
     :: ((cpu[c].cr0 ^ m0_v) & CR0_PG) != 0 && (cpu[c].efer_lo & EFER_LME) != 0 ->
        if
        :: (m0_v & CR0_PG) != 0 -> cpu[c].efer_lo = cpu[c].efer_lo | EFER_LMA
        :: else -> cpu[c].efer_lo = cpu[c].efer_lo & ~EFER_LMA
        fi
     :: else -> skip
     fi;
     cpu[c].cr0 = m0_v & ~CR0_IGNORED; out = OK
  fi
}

inline pinning_active(c, out) {   /* pinning.pinning_active */
  out = (g_key && (M_PIN_GATE != PIN_ONLINE || (cpu[c].flags & ONLINE) != 0))
}

/* pinning.native_write_cr4. (Promela: the value is copied first - an
 * inline's arguments are re-evaluated at every use.) */
inline native_write_cr4(c, v_lo, v_hi, out) {   /* pinning.native_write_cr4 */
  nw4_lo = v_lo; nw4_hi = v_hi;
  mov_cr4(c, nw4_lo, nw4_hi, out);
  pinning_active(c, nw4_act);
  if
  :: out != OK || !nw4_act -> skip
  :: else ->
     if
     :: (nw4_lo & M_PINNED_MASK_LO) == g_pinned_lo &&
        (nw4_hi & M_PINNED_MASK_HI) == g_pinned_hi -> out = OK
     :: else ->
        mov_cr4(c, (nw4_lo & ~M_PINNED_MASK_LO) | g_pinned_lo,
                (nw4_hi & ~M_PINNED_MASK_HI) | g_pinned_hi, out);
        if
        :: out != OK -> skip
        :: else ->
           if
           :: (g_flags & WARNED_CR4) != 0 -> out = OK
           :: else ->
              g_flags = g_flags | WARNED_CR4;
              step_warnings++;             /* warnings.append(...) */
              printk(c, out)
           fi
        fi
     fi
  fi
}

inline native_write_cr0(c, v, v_hi, out) {   /* pinning.native_write_cr0 */
  nw0_v = v;
  mov_cr0(c, nw0_v, v_hi, out);
  pinning_active(c, nw0_act);
  if
  :: out != OK || !nw0_act || (nw0_v & CR0_WP) != 0 -> skip
  :: else ->
     mov_cr0(c, nw0_v | CR0_WP, 0, out);  /* the first write took: hi 0 */
     if
     :: out != OK -> skip
     :: else ->
        if
        :: (g_flags & WARNED_CR0) != 0 -> out = OK
        :: else ->
           g_flags = g_flags | WARNED_CR0;
           step_warnings++;                /* warnings.append(...) */
           printk(c, out)
        fi
     fi
  fi
}

/* pinning.cr4_init up to its native_write_cr4 call: the value it writes.
 * (apply makes the call, shared with the other ops that end in
 * native_write_cr4: see apply; with M_PIN_GATE == PIN_ONLINE it first
 * runs cr4_init_warn in a d_step of its own.) */
inline cr4_init_value(c, v_lo, v_hi) {   /* pinning.cr4_init */
  v_lo = cpu[c].cr4_lo; v_hi = cpu[c].cr4_hi;
  if
  :: KERNEL_HAS(FEATURE_PCID) -> v_lo = v_lo | CR4_PCIDE
  :: else -> skip
  fi;
  if
  :: g_key && M_PIN_GATE != PIN_ONLINE ->
     v_lo = (v_lo & ~M_PINNED_MASK_LO) | g_pinned_lo;
     v_hi = (v_hi & ~M_PINNED_MASK_HI) | g_pinned_hi
  :: else -> skip
  fi
}

/* pinning._cr4_init_warn: WARN_ON_ONCE(cr_pinning_enabled()) in the
 * rejected cccc0c8ff0a9's cr4_init, before its CR4 write. */
inline cr4_init_warn(c, out) {   /* pinning._cr4_init_warn */
  pinning_active(c, ci_act);
  if
  :: (g_flags & WARNED_CR4_INIT) != 0 || !ci_act -> out = OK
  :: else ->
     g_flags = g_flags | WARNED_CR4_INIT;
     step_warnings++;                   /* warnings.append(...) */
     printk(c, out)
  fi
}

inline setup_cr_pinning(c) {   /* pinning.setup_cr_pinning */
  g_pinned_lo = cpu[c].cr4_lo & M_PINNED_MASK_LO;
  g_pinned_hi = cpu[c].cr4_hi & M_PINNED_MASK_HI;
  g_key = true
}

/* ====================================================================== */
/* run.py                                                                 */
/* ====================================================================== */

inline enter_long_mode(c) {   /* ops_smp.enter_long_mode */
  cpu[c].cr0 = ENTRY_CR0;
  cpu[c].cr4_lo = M_ENTRY_CR4_LO; cpu[c].cr4_hi = M_ENTRY_CR4_HI;
  cpu[c].efer_lo = ENTRY_EFER; cpu[c].efer_hi = 0;
  cpu[c].flags = cpu[c].flags | STARTED | M_APIC_FLAGS
}

inline initial_state() {   /* run.initial_state (every field starts at 0) */
  enter_long_mode(0);
  cpu[0].flags = cpu[0].flags | ONLINE;
  if
  :: M_CONSOLE_AT_BOOT -> g_flags = g_flags | CONSOLE_ON
  :: else -> skip
  fi
}

inline is_intercepted(msr, out) {   /* `msr in m.intercepted_msrs` */
  out = false; ix = 0;
  do
  :: ix < M_NINTERCEPTED ->
     if
     :: intercepted_msrs[ix] == msr -> out = true
     :: else -> skip
     fi;
     ix++
  :: else -> break
  od;
  skip   /* `break` lands here, inside any enclosing d_step */
}

/* ops_msr.missing: absent, or waiting for a microcode update */
inline msr_missing(c, msr, out) {   /* ops_msr.missing */
  out = false; ix = 0;
  do
  :: ix < M_NABSENT ->
     if
     :: absent_msrs[ix] == msr -> out = true
     :: else -> skip
     fi;
     ix++
  :: else -> break
  od;
  ix = 0;
  do
  :: ix < M_NMICROCODE && (cpu[c].flags & UCODE) == 0 ->
     if
     :: microcode_msrs[ix] == msr -> out = true
     :: else -> skip
     fi;
     ix++
  :: else -> break
  od;
  skip   /* `break` lands here, inside any enclosing d_step */
}

inline msr_readonly(msr, out) {   /* `msr in m.readonly_msrs` */
  out = false; ix = 0;
  do
  :: ix < M_NREADONLY ->
     if
     :: readonly_msrs[ix] == msr -> out = true
     :: else -> skip
     fi;
     ix++
  :: else -> break
  od;
  skip   /* `break` lands here, inside any enclosing d_step */
}

/* apic._has: bit (msr - 0x800) of a mask split in _lo/_hi words */
inline x2apic_has(mask_lo, mask_hi, msr, out) {   /* apic._has */
  if
  :: msr >= X2APIC_FIRST && msr < X2APIC_FIRST + 32 ->
     out = (((mask_lo) >> ((msr) - X2APIC_FIRST)) & 1) != 0
  :: msr >= X2APIC_FIRST + 32 && msr < X2APIC_FIRST + 64 ->
     out = (((mask_hi) >> ((msr) - X2APIC_FIRST - 32)) & 1) != 0
  :: else -> out = false
  fi
}

/* The x2APIC part of ops_msr.enter before the intercept: icpt = the access
 * exits (#VC on SEV-ES/SNP, #VE on TDX: apic.tdx_exit), gp = the TDX
 * module injects #GP(0) instead. */
inline x2apic_exit(msr, write, icpt, gp) {   /* ops_msr.enter */
  if
  :: msr >= X2APIC_FIRST && msr <= X2APIC_LAST && M_SEV -> icpt = true
  :: msr >= X2APIC_FIRST && msr <= X2APIC_LAST && M_PLATFORM == TDX ->
     if
     :: write -> x2apic_has(TDX_VE_WRITE_LO, TDX_VE_WRITE_HI, msr, icpt)
     :: else -> x2apic_has(TDX_VE_READ_LO, TDX_VE_READ_HI, msr, icpt)
     fi;
     if
     :: !icpt -> x2apic_has(TDX_NO_EXIT_LO, TDX_NO_EXIT_HI, msr, xa_t);
        gp = !xa_t
     :: else -> skip
     fi
  :: else -> skip
  fi
}

/* apic.x2apic_fault: out = the access #GPs (not in x2APIC mode, reserved,
 * wrong direction, or a value with reserved bits) */
inline x2apic_fault(c, msr, write, ext, lo, hi, out) {   /* apic.x2apic_fault */
  if
  :: (cpu[c].flags & (APIC_EXTD | APIC_OFF)) != APIC_EXTD -> out = true
  :: else ->
     x2apic_has(X2APIC_READABLE_LO | X2APIC_WRITABLE_LO,
                X2APIC_READABLE_HI | X2APIC_WRITABLE_HI, msr, xa_r);
     if
     :: !xa_r -> out = true                       /* reserved */
     :: xa_r && !write ->
        x2apic_has(X2APIC_READABLE_LO, X2APIC_READABLE_HI, msr, xa_r);
        out = !xa_r                               /* write-only */
     :: xa_r && write ->
        x2apic_has(X2APIC_WRITABLE_LO, X2APIC_WRITABLE_HI, msr, xa_r);
        out = !xa_r ||                            /* read-only */
              ((hi != 0 || ext != 0) && msr != X2APIC_ICR) ||
              ((lo != 0 || hi != 0 || ext != 0) &&
               (msr == X2APIC_EOI || msr == X2APIC_ESR)) ||
              ((lo & (-256)) != 0 && msr == X2APIC_SELF_IPI)
     fi
  fi
}

/* apic.apic_base_write: gp = the WRMSR #GPs; else the mode changes */
inline apic_base_write(c, ext, lo, hi, gp) {   /* apic.apic_base_write */
  ab_en = (lo & APIC_BASE_EN) != 0; ab_extd = (lo & APIC_BASE_EXTD) != 0;
  gp = (lo & APIC_BASE_RESERVED_LO) != 0 || (hi & APIC_BASE_RESERVED_HI) != 0 ||
       ext != 0 ||
       (ab_extd && (M_APIC == APIC_XAPIC_ONLY || !ab_en)) ||
       ((cpu[c].flags & APIC_EXTD) != 0 && !ab_extd && M_APIC == APIC_LOCKED) ||
       ((cpu[c].flags & APIC_EXTD) != 0 && ab_en && !ab_extd) ||
       ((cpu[c].flags & APIC_OFF) != 0 && ab_extd);
  if
  :: gp -> skip
  :: else ->
     cpu[c].flags = cpu[c].flags & ~(APIC_EXTD | APIC_OFF);
     if
     :: ab_extd -> cpu[c].flags = cpu[c].flags | APIC_EXTD
     :: else -> skip
     fi;
     if
     :: !ab_en -> cpu[c].flags = cpu[c].flags | APIC_OFF
     :: else -> skip
     fi
  fi
}

/* ops_msr.msr_gp: #GP at a kernel rdmsr()/wrmsr() site; once fixed up,
 * the first of each kind is reported (pr_warn_once). */
inline msr_gp(c, flag, out) {   /* ops_msr.msr_gp */
  mg_flag = flag;
  raise_event(c, GP, false, R_MSR, out);
  if
  :: out != OK -> skip
  :: out == OK && (mg_flag == 0 || (g_flags & mg_flag) != 0) ->
     skip                        /* a _safe site (flag 0), or warned before */
  :: else ->
     g_flags = g_flags | mg_flag;
     step_warnings++;                      /* warnings.append(...) */
     printk(c, out)
  fi
}

/* ops_msr.Wrmsr.apply. The value is the op's _lo/_hi/_ext words (header comment);
 * EFER keeps bits 0-63 only: no rule reads a higher one. Its two #GP
 * returns share one raise_event at the end (wm_gp), to halve the code. */
inline wrmsr(c, msr, ext, lo, hi, warn, out) {   /* ops_msr.Wrmsr.apply */
  wm_msr = msr; wm_ext = ext; wm_lo = lo; wm_hi = hi; wm_warn = warn;
  out = OK; wm_gp = false;
  is_intercepted(wm_msr, wm_icpt);
  x2apic_exit(wm_msr, true, wm_icpt, wm_gp);     /* TDX module #GP: wm_gp */
  if
  :: wm_icpt && !wm_gp -> intercepted(c, R_MSR, out)
  :: else -> skip
  fi;
  if
  :: out == OK && !wm_gp -> msr_missing(c, wm_msr, wm_gp)   /* not implemented: #GP */
  :: else -> skip
  fi;
  if
  :: out == OK && !wm_gp && wm_msr >= X2APIC_FIRST && wm_msr <= X2APIC_LAST ->
     x2apic_fault(c, wm_msr, true, wm_ext, wm_lo, wm_hi, wm_gp)
  :: else -> skip
  fi;
  if
  :: out == OK && !wm_gp -> msr_readonly(wm_msr, wm_gp)   /* read-only: #GP */
  :: else -> skip
  fi;
  if
  :: out != OK || wm_gp -> skip
  :: else ->
     is_fred_msr(wm_msr, wm_why);
     if
     :: wm_why ->                                  /* a FRED MSR */
        if
        :: (M_FEATURES & FEATURE_FRED) == 0 -> wm_why = true
        :: else -> fred_msr_write_faults(wm_msr, wm_ext, wm_lo, wm_hi, wm_why)
        fi;
        if
        :: wm_why -> wm_gp = true                 /* bad FRED MSR write: #GP */
        :: else ->
           if
           :: wm_msr == MSR_FRED_CONFIG ->
              cpu[c].fred_config_lo = wm_lo; cpu[c].fred_config_hi = wm_hi
           :: wm_msr == MSR_FRED_STKLVLS ->
              cpu[c].fred_stklvls_lo = wm_lo; cpu[c].fred_stklvls_hi = wm_hi
           :: wm_msr < MSR_FRED_STKLVLS ->
              cpu[c].fred_rsp_lo[wm_msr - MSR_FRED_RSP0] = wm_lo;
              cpu[c].fred_rsp_hi[wm_msr - MSR_FRED_RSP0] = wm_hi
           :: else -> skip                        /* FRED_SSPn: not kept */
           fi;
           out = OK
        fi
     :: !wm_why && wm_msr == MSR_S_CET &&
        ((M_FEATURES & FEATURE_CET) == 0 || (wm_lo & S_CET_RESERVED) != 0) ->
        wm_gp = true               /* no CET, or a reserved S_CET bit: #GP */
     :: !wm_why && wm_msr == MSR_S_CET && (M_FEATURES & FEATURE_CET) != 0 &&
        (wm_lo & S_CET_RESERVED) == 0 ->
        if                         /* only ENDBR_EN is kept: IBT_ON */
        :: (wm_lo & S_CET_ENDBR_EN) != 0 -> cpu[c].flags = cpu[c].flags | IBT_ON
        :: else -> cpu[c].flags = cpu[c].flags & ~IBT_ON
        fi;
        out = OK
     :: !wm_why && wm_msr == MSR_EFER &&
        ((wm_lo & EFER_RESERVED_LO) != 0 || wm_hi != 0 || wm_ext != 0) ->
        wm_gp = true                        /* a reserved EFER bit: #GP */
     :: !wm_why && wm_msr == MSR_EFER && (wm_lo & EFER_RESERVED_LO) == 0 &&
        wm_hi == 0 && wm_ext == 0 ->
        wm_old = cpu[c].efer_lo;
        wm_new = (wm_lo & ~EFER_LMA) | (wm_old & EFER_LMA); /* LMA is read-only */
        if
        :: ((wm_old ^ wm_new) & EFER_LME) != 0 && (cpu[c].cr0 & CR0_PG) != 0 ->
           wm_gp = true                    /* changes LME with paging on: #GP */
        :: else -> cpu[c].efer_lo = wm_new; cpu[c].efer_hi = wm_hi; out = OK
        fi
     :: !wm_why && wm_msr == MSR_APIC_BASE ->
        apic_base_write(c, wm_ext, wm_lo, wm_hi, wm_gp);
        out = OK
     :: else -> out = OK
     fi
  fi;
  if
  :: wm_gp -> msr_gp(c, wm_warn, out)
  :: else -> skip
  fi
}

inline rdmsr(c, msr, warn, out) {   /* ops_msr.Rdmsr.apply */
  rm_msr = msr; rm_warn = warn;
  out = OK; rm_gp = false;
  is_intercepted(rm_msr, rm_icpt);
  x2apic_exit(rm_msr, false, rm_icpt, rm_gp);    /* TDX module #GP: rm_gp */
  if
  :: rm_gp -> msr_gp(c, rm_warn, out)
  :: !rm_gp && rm_icpt -> intercepted(c, R_MSR, out)
  :: else -> skip
  fi;
  if
  :: out != OK || rm_gp -> skip
  :: else ->
     msr_missing(c, rm_msr, rm_icpt);
     if
     :: !rm_icpt && rm_msr >= X2APIC_FIRST && rm_msr <= X2APIC_LAST ->
        x2apic_fault(c, rm_msr, false, 0, 0, 0, rm_icpt)
     :: else -> skip
     fi;
     if
     :: !rm_icpt -> is_fred_msr(rm_msr, rm_icpt);
        rm_icpt = (rm_icpt && (M_FEATURES & FEATURE_FRED) == 0) ||
                  (rm_msr == MSR_S_CET && (M_FEATURES & FEATURE_CET) == 0)
     :: else -> skip
     fi;
     if
     :: rm_icpt -> msr_gp(c, rm_warn, out)
     :: else -> skip
     fi
  fi
}

/* run._apply's INVALID cases, all decided before it changes anything. An
 * event whose outcome would be INVALID is not taken (bfs: `continue`), and
 * Promela cannot undo a transition, so they are also the guard of every
 * event (APPLY_ALLOWED); `apply` still returns INVALID for them. */
#define LAST_KIND      FRED_RSP0  /* the highest translated op kind (the
                                        memory ops after it: export refuses) */
#define KNOWN_KIND(k)  ((k) <= LAST_KIND)
#define APPLY_ALLOWED(c, op) \
  ((cpu[c].flags & STARTED) != 0 && KNOWN_KIND(op_kind[op]) && \
   !(op_kind[op] == START && (cpu[op_a_lo[op]].flags & STARTED) != 0) && \
   !(op_kind[op] == WAIT_ONLINE && (cpu[op_a_lo[op]].flags & ONLINE) == 0) && \
   !(op_kind[op] == SEV_ES_TERMINATE && !M_SEV))

/* run._apply and the ops' apply(). SPIN compiles a d_step into straight C but caps its jump
 * targets (MAXDSTEP), and every inline is expanded where it is used; so
 * the dispatch on the op kind is a plain `if` whose branches are d_steps,
 * and ops whose Python branches end in the same call - native_write_cr4,
 * native_write_cr0, intercepted, raise_event - compute its arguments
 * first and share one expansion of it. The event stays one transition
 * (apply runs inside event's atomic sequence, whose inner states SPIN does
 * not store). The dispatch guards read only the state and the constant op
 * table: pan re-evaluates them when it backtracks, when `hidden`
 * temporaries hold values of some other event. */
inline apply_args(c, op) {   /* run._apply's locals: flags, kind, a, b */
  ap_flags = cpu[c].flags;
  ap_kind = op_kind[op];
  ap_a_lo = op_a_lo[op]; ap_a_hi = op_a_hi[op];
  ap_b_lo = op_b_lo[op]; ap_b_hi = op_b_hi[op]; ap_b_ext = op_b_ext[op]
}

#define AP_IS(c, op, k) ((cpu[c].flags & STARTED) != 0 && op_kind[op] == (k))
inline apply(c, op, out) {   /* run._apply -> Op.apply */
  if
  :: (cpu[c].flags & STARTED) == 0 ->
     d_step { out = INVALID }                     /* runs before it is started */
  :: AP_IS(c, op, PRINTK) -> d_step { out = OK; printk(c, out) }
  :: AP_IS(c, op, CR4_SET) || AP_IS(c, op, CR4_CLEAR) ||
     AP_IS(c, op, CR4_INIT) || AP_IS(c, op, CR4_GADGET) ->
     d_step {
       out = OK;
       if
       :: op_kind[op] == CR4_INIT && M_PIN_GATE == PIN_ONLINE ->
          cr4_init_warn(c, out)
       :: else -> skip
       fi
     };
     d_step {
       if
       :: out != OK -> skip              /* cr4_init's WARN ended the event */
       :: else ->
          apply_args(c, op);
          ap_call = true;
          if
          :: ap_kind == CR4_SET ->
             ap_lo = cpu[c].cr4_lo | ap_a_lo; ap_hi = cpu[c].cr4_hi | ap_a_hi;
             /* cr4_update_irqsoff() writes only when the value changes */
             ap_call = (ap_lo != cpu[c].cr4_lo || ap_hi != cpu[c].cr4_hi)
          :: ap_kind == CR4_CLEAR ->
             ap_lo = cpu[c].cr4_lo & ~ap_a_lo; ap_hi = cpu[c].cr4_hi & ~ap_a_hi;
             ap_call = (ap_lo != cpu[c].cr4_lo || ap_hi != cpu[c].cr4_hi)
          :: ap_kind == CR4_INIT -> cr4_init_value(c, ap_lo, ap_hi)
          :: else ->                                   /* CR4_GADGET */
             ap_lo = (cpu[c].cr4_lo | ap_a_lo) & ~ap_b_lo;
             ap_hi = (cpu[c].cr4_hi | ap_a_hi) & ~ap_b_hi
          fi;
          if
          :: ap_call -> native_write_cr4(c, ap_lo, ap_hi, out)
          :: else -> skip
          fi
       fi
     }
  :: AP_IS(c, op, CR0_SET) || AP_IS(c, op, CR0_CLEAR) ->
     d_step {
       apply_args(c, op);
       out = OK;
       if
       :: ap_kind == CR0_SET -> ap_lo = cpu[c].cr0 | ap_a_lo; ap_hi = ap_a_hi
       :: else -> ap_lo = cpu[c].cr0 & ~ap_a_lo; ap_hi = 0
       fi;
       native_write_cr0(c, ap_lo, ap_hi, out)
     }
  :: AP_IS(c, op, WRMSR) || AP_IS(c, op, WRMSR_SAFE) ->
     d_step {
       apply_args(c, op);
       if     /* the pr_warn_once flag; 0 at a wrmsr_safe() site */
       :: ap_kind == WRMSR -> ap_lo = WARNED_WRMSR
       :: else -> ap_lo = 0
       fi;
       wrmsr(c, ap_a_lo, ap_b_ext, ap_b_lo, ap_b_hi, ap_lo, out)
     }
  :: AP_IS(c, op, RDMSR) || AP_IS(c, op, RDMSR_SAFE) ->
     d_step {
       apply_args(c, op);
       if
       :: ap_kind == RDMSR -> ap_lo = WARNED_RDMSR
       :: else -> ap_lo = 0
       fi;
       rdmsr(c, ap_a_lo, ap_lo, out)
     }
  :: AP_IS(c, op, NMI_EVENT) ->
     d_step {
       apply_args(c, op);
       out = OK;
       if
       :: (ap_flags & NMI_BLOCKED) != 0 ||
          (M_PLATFORM == TDX && (ap_flags & VE_PENDING) != 0) -> skip
       :: else ->
          cpu[c].flags = ap_flags | NMI_BLOCKED;
          raise_event(c, NMI, true, 0, out);
          cpu[c].flags = cpu[c].flags & ~NMI_BLOCKED  /* IRET/ERETS */
       fi
     }
  :: AP_IS(c, op, PF_EVENT) || AP_IS(c, op, RDGSBASE) ->
     d_step {
       apply_args(c, op);
       out = OK;
       if
       :: ap_kind == PF_EVENT -> ap_call = true; ap_vector = PF
       :: ap_kind != PF_EVENT && ((cpu[c].flags & CS32) != 0 ||
          (cpu[c].efer_lo & EFER_LMA) == 0) ->
          ap_call = true; ap_vector = UD     /* RDGSBASE outside 64-bit mode */
       :: ap_kind != PF_EVENT && (cpu[c].flags & CS32) == 0 &&
          (cpu[c].efer_lo & EFER_LMA) != 0 &&
          (cpu[c].cr4_lo & CR4_FSGSBASE) != 0 ->
          ap_call = false                                 /* RDGSBASE */
       :: else -> ap_call = true; ap_vector = UD  /* RDGSBASE, CR4.FSGSBASE = 0 */
       fi;
       if
       :: ap_call -> raise_event(c, ap_vector, false, R_NONE, out)
       :: else -> skip
       fi
     }
  :: AP_IS(c, op, MCE_EVENT) ->  /* ops_events.Mce: broadcast to every CPU */
     d_step {
       apply_args(c, op);
       out = OK; mc_d = 0;
       do                        /* a CPU with CR4.MCE = 0: shutdown */
       :: mc_d < NCPU && (cpu[mc_d].cr4_lo & CR4_MCE) == 0 ->
          out = TRIPLE_FAULT; break
       :: mc_d < NCPU && (cpu[mc_d].cr4_lo & CR4_MCE) != 0 -> mc_d++
       :: mc_d >= NCPU -> break
       od;
       mc_d = 0;
       do                        /* then #MC on each, in CPU order */
       :: out == OK && mc_d < NCPU ->
          raise_event(mc_d, MC, false, R_NONE, out); mc_d++
       :: else -> break
       od;
       skip   /* `break` lands here, inside the d_step */
     }
  :: AP_IS(c, op, INT3) || AP_IS(c, op, DIV0) || AP_IS(c, op, INT_N) ||
     AP_IS(c, op, RAISE) ->       /* ops_exceptions: vector a, INT n if b */
     d_step {
       apply_args(c, op);
       raise_event(c, ap_a_lo, ap_b_lo, R_NONE, out)
     }
  :: AP_IS(c, op, STAC) || AP_IS(c, op, CLAC) ->   /* ops_lass.AcFlag */
     d_step {
       apply_args(c, op);
       if
       :: (M_FEATURES & FEATURE_SMAP) == 0 -> raise_event(c, UD, false, R_NONE, out)
       :: else ->
          if
          :: ap_kind == STAC -> cpu[c].flags = cpu[c].flags | AC_SET
          :: else -> cpu[c].flags = cpu[c].flags & ~AC_SET
          fi;
          out = OK
       fi
     }
  :: AP_IS(c, op, ACCESS_USER) ->   /* ops_lass.AccessUser */
     d_step {
       apply_args(c, op);
       if
       :: (cpu[c].cr4_lo & CR4_LASS) != 0 && (cpu[c].flags & CS32) == 0 &&
          (cpu[c].efer_lo & EFER_LMA) != 0 &&
          (ap_a_lo == 1 || ((cpu[c].cr4_lo & CR4_SMAP) != 0 &&
                            (cpu[c].flags & AC_SET) == 0)) ->
          if
          :: ap_a_lo == 2 -> raise_event(c, SS, false, R_NONE, out)  /* #SS */
          :: else -> raise_event(c, GP, false, R_NONE, out)
          fi
       :: else -> out = OK
       fi
     }
  :: AP_IS(c, op, CALL_INDIRECT) ->   /* ops_cet.CallIndirect */
     d_step {
       apply_args(c, op);
       if
       :: ap_a_lo == 1 && (cpu[c].cr4_lo & CR4_CET) != 0 &&
          (cpu[c].flags & IBT_ON) != 0 -> raise_event(c, CP, false, R_NONE, out)
       :: ap_a_lo == 2 && (cpu[c].cr4_lo & CR4_CET) != 0 &&
          (cpu[c].flags & IBT_ON) != 0 ->
          raise_event(c, CP, false, R_IBT_SELFTEST, out)
       :: else -> out = OK
       fi
     }
  :: AP_IS(c, op, LOADSEGMENT) ->   /* ops_segments.LoadSegment */
     d_step {
       apply_args(c, op);
       if
       :: (cpu[c].flags & GDT_NULL) != 0 ->
          raise_event(c, GP, false, R_SEG, out);
          if   /* the fixup loads the null selector into SS */
          :: out == OK && ap_a_lo == 0 -> cpu[c].flags = cpu[c].flags & ~SS_KERNEL
          :: else -> skip
          fi
       :: else ->
          if
          :: ap_a_lo == 0 -> cpu[c].flags = cpu[c].flags | SS_KERNEL
          :: else -> skip
          fi;
          out = OK
       fi
     }
  :: AP_IS(c, op, UD2) ->       /* ops_events.Ud2: the bug site's #UD */
     d_step {
       apply_args(c, op);
       raise_event(c, UD, false, ap_a_lo, out);
       if
       :: out == OK && ap_a_lo == R_WARN ->
          step_warnings++;                  /* warnings.append(...) */
          printk(c, out)                    /* the WARN report */
       :: else -> skip
       fi
     }
  :: AP_IS(c, op, CPUID) || AP_IS(c, op, PORT_IO) || AP_IS(c, op, MMIO) ->
     d_step {
       apply_args(c, op);
       if
       :: ap_kind == CPUID -> ap_reason = R_CPUID
       :: ap_kind == PORT_IO -> ap_reason = R_PORT_IO
       :: else -> ap_reason = R_MMIO
       fi;
       if       /* ops_platform.Cpuid: TDX leaves the module does not answer */
       :: ap_kind == CPUID && M_PLATFORM == TDX && ap_b_lo != 0 &&
          ((ap_a_lo >= 1073741824 && ap_a_lo <= 1342177279) ||
           ap_a_lo == 2 || ap_a_lo == 6 || ap_a_lo == 9 || ap_a_lo == 11 ||
           ap_a_lo == 12 || ap_a_lo == 15 || ap_a_lo == 16 ||
           ap_a_lo == 22 || ap_a_lo == 23 || ap_a_lo == 27 ||
           ap_a_lo == 31 || (ap_a_hi == 0 && ap_a_lo >= (-2147483647 + 1) &&
           ap_a_lo <= (-2147483647 + 4))) ->
          raise_event(c, VE, false, R_CPUID, out)
       :: else -> intercepted(c, ap_reason, out)
       fi
     }
  :: AP_IS(c, op, MOV_CR4) ->
     d_step {
       apply_args(c, op);
       mov_cr4(c, (cpu[c].cr4_lo | ap_a_lo) & ~ap_b_lo,
               (cpu[c].cr4_hi | ap_a_hi) & ~ap_b_hi, out)
     }
  :: AP_IS(c, op, MOV_CR0) ->
     d_step {
       apply_args(c, op);
       mov_cr0(c, (cpu[c].cr0 | ap_a_lo) & ~ap_b_lo, ap_a_hi & ~ap_b_hi, out)
     }
  :: else -> d_step { apply_args(c, op); out = OK; apply_plain(c, out) }
  fi
}

/* The apply() of the ops that raise nothing. */
inline apply_plain(c, out) {   /* run._apply, continued */
  if
  :: ap_kind == LIDT ->
     cpu[c].idt = ap_a_lo;
     if
     :: ap_b_lo != 0 || ap_b_hi != 0 || ap_b_ext != 0 ->
        cpu[c].flags = (ap_flags & ~VC_BOOT_GATE) | VC_BOOT_GATE
     :: else -> cpu[c].flags = ap_flags & ~VC_BOOT_GATE
     fi
  :: ap_kind == SETUP_GHCB -> setup_ghcb(c)
  :: ap_kind == LGDT && ap_a_lo != 0 ->
     cpu[c].flags = cpu[c].flags | GDT_NULL   /* ops_segments.Lgdt: limit 0 */
  :: ap_kind == LGDT && ap_a_lo == 0 -> cpu[c].flags = cpu[c].flags & ~GDT_NULL
  :: ap_kind == LJMP && (cpu[c].cr0 & CR0_PE) == 0 -> skip   /* real mode */
  :: ap_kind == LJMP && (cpu[c].cr0 & CR0_PE) != 0 && ap_a_lo != 0 ->
     cpu[c].flags = cpu[c].flags | CS32       /* ops_mode.Ljmp: L = 0 */
  :: ap_kind == LJMP && (cpu[c].cr0 & CR0_PE) != 0 && ap_a_lo == 0 ->
     cpu[c].flags = cpu[c].flags & ~CS32      /* L = 1 */
  :: ap_kind == START ->
     if
     :: (cpu[ap_a_lo].flags & STARTED) != 0 -> out = INVALID  /* started twice */
     :: else -> enter_long_mode(ap_a_lo)
     fi
  :: ap_kind == ONLINE_OP -> cpu[c].flags = ap_flags | ONLINE
  :: ap_kind == WAIT_ONLINE ->
     if
     :: (cpu[ap_a_lo].flags & ONLINE) == 0 -> out = INVALID   /* would block */
     :: else -> skip
     fi
  :: ap_kind == VE_INFO -> cpu[c].flags = ap_flags & ~VE_PENDING
  :: ap_kind == MOV_CR3 -> cpu[c].cr3 = ap_a_lo & 4095
  :: ap_kind == SETUP_CR_PINNING -> setup_cr_pinning(c)
  :: ap_kind == LTR -> cpu[c].tss = cpu[c].tss | 1
  :: ap_kind == TSS_SETUP_IST -> cpu[c].tss = cpu[c].tss | ap_a_lo
  :: ap_kind == SEV_ES_INIT_VC_HANDLING ->
     if
     :: M_SEV -> g_flags = g_flags | GHCBS_ALLOCATED
     :: else -> skip
     fi
  :: ap_kind == PATCH_ALTERNATIVES ->
     if
     :: KERNEL_HAS(FEATURE_FSGSBASE) -> g_flags = g_flags | ALT_PATCHED | ALT_FSGSBASE
     :: else -> g_flags = g_flags | ALT_PATCHED
     fi
  :: ap_kind == CLEAR_CPU_CAP -> g_flags = g_flags | (ap_a_lo << CAP_CLEARED_SHIFT)
  :: ap_kind == CLEAR_ONLINE -> cpu[c].flags = ap_flags & ~ONLINE
  :: ap_kind == CONSOLE_INIT -> g_flags = g_flags | CONSOLE_ON
  :: ap_kind == NOP -> skip
  :: ap_kind == LOAD_MICROCODE -> cpu[c].flags = ap_flags | UCODE
  :: ap_kind == FRED_RSP0 && !KERNEL_HAS(FEATURE_FRED) -> skip
  :: ap_kind == FRED_RSP0 && KERNEL_HAS(FEATURE_FRED) ->
     /* ops_percpu.FredRsp0: `update` writes only a stale cache, `sync`
        writes the MSR from the cache */
     if
     :: (cpu[c].percpu & PERCPU_FRED_RSP0) != 0 && ap_a_lo == 0 -> skip
     :: (cpu[c].percpu & PERCPU_FRED_RSP0) != 0 && ap_a_lo != 0 ->
        cpu[c].fred_rsp_lo[0] = FRED_STACK_LO;
        cpu[c].fred_rsp_hi[0] = FRED_STACK_HI
     :: (cpu[c].percpu & PERCPU_FRED_RSP0) == 0 && ap_a_lo == 0 ->
        cpu[c].fred_rsp_lo[0] = FRED_STACK_LO;
        cpu[c].fred_rsp_hi[0] = FRED_STACK_HI;
        cpu[c].percpu = cpu[c].percpu | PERCPU_FRED_RSP0
     :: (cpu[c].percpu & PERCPU_FRED_RSP0) == 0 && ap_a_lo != 0 ->
        cpu[c].fred_rsp_lo[0] = 0; cpu[c].fred_rsp_hi[0] = 0
     fi
  :: ap_kind == SEV_ES_TERMINATE -> terminate(out)   /* M_SEV: APPLY_ALLOWED */
  :: else -> out = INVALID                       /* unknown op kind */
  fi
}

/* run.pinned_cleared != 0, over the _lo/_hi pair */
inline pinned_cleared(c, before_lo, before_hi, out) {   /* run.pinned_cleared */
  out = (g_key &&
         ((before_lo & ~cpu[c].cr4_lo & g_pinned_lo) != 0 ||
          (before_hi & ~cpu[c].cr4_hi & g_pinned_hi) != 0))
}

inline step(c, op, out) {   /* run.step */
  d_step { st_before_lo = cpu[c].cr4_lo; st_before_hi = cpu[c].cr4_hi };
  apply(c, op, out);
  d_step {
    if
    :: M_PIN_PROPERTY && out == OK ->
       pinned_cleared(c, st_before_lo, st_before_hi, pc_lost);
       if
       :: pc_lost -> out = PIN_CLEARED
       :: else -> skip
       fi
    :: else -> skip
    fi
  }
}

/* ====================================================================== */
/* The exploration: bfs.explore's rules and Schedule.take                  */
/* ====================================================================== */

/* bfs.explore: an outcome in fail_on fails; any other outcome but OK ends
 * the run without failing (every process then blocks on !halted: a valid
 * end state); INVALID never gets here (APPLY_ALLOWED). */
inline oracle(out) {   /* bfs.explore: an event's outcome */
  if
  :: out == OK -> skip
  :: out == TRIPLE_FAULT && FAIL_ON_TRIPLE_FAULT ->
     fail_triple_fault = true; assert(!fail_triple_fault)
  :: out == GUEST_TERMINATED && FAIL_ON_GUEST_TERMINATED ->
     fail_guest_terminated = true; assert(!fail_guest_terminated)
  :: out == HANG && FAIL_ON_HANG ->
     fail_hang = true; assert(!fail_hang)
  :: out == UNHANDLED && FAIL_ON_UNHANDLED ->
     fail_unhandled = true; assert(!fail_unhandled)
  :: out == PIN_CLEARED && FAIL_ON_PIN_CLEARED ->
     fail_pin_cleared = true; assert(!fail_pin_cleared)
  :: out == INVALID ->
     internal_invalid_after_guard = true; assert(!internal_invalid_after_guard)
  :: else -> halted = true
  fi
}

inline take(c, op, slot, trigger) {   /* Schedule.take, and bfs's `used` */
  if
  :: trigger >= 0 -> s_left[trigger]--; bfs_used++
  :: else ->
     s_done[prog_off[c] + slot] = true;
     do
     :: s_first[c] < prog_len[c] && s_done[prog_off[c] + s_first[c]] -> s_first[c]++
     :: else -> break
     od;
     if
     :: op_kind[op] == START -> s_started[op_a_lo[op]] = true
     :: op_kind[op] == ONLINE_OP -> s_online[c] = true
     :: else -> skip
     fi
  fi
}

/* With -DTRACE (simulations only: `spin -DTRACE`), each event also
 * prints its outcome and the model's state, field by field in machine.py's
 * order, so that a test can step the Python model alongside. */
inline trace_state() {   /* (tests only) */
  printf("OUT %d %d\n", ev_out, step_warnings);
  wt_c = 0;
  do
  :: wt_c < NCPU ->
     printf("ST %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d\n",
            wt_c, cpu[wt_c].cr0, cpu[wt_c].cr3, cpu[wt_c].cr4_lo, cpu[wt_c].cr4_hi,
            cpu[wt_c].efer_lo, cpu[wt_c].efer_hi,
            cpu[wt_c].fred_config_lo, cpu[wt_c].fred_config_hi,
            cpu[wt_c].fred_stklvls_lo, cpu[wt_c].fred_stklvls_hi,
            cpu[wt_c].fred_rsp_lo[0], cpu[wt_c].fred_rsp_hi[0],
            cpu[wt_c].fred_rsp_lo[1], cpu[wt_c].fred_rsp_hi[1],
            cpu[wt_c].fred_rsp_lo[2], cpu[wt_c].fred_rsp_hi[2],
            cpu[wt_c].fred_rsp_lo[3], cpu[wt_c].fred_rsp_hi[3],
            cpu[wt_c].idt, cpu[wt_c].tss, cpu[wt_c].ghcb, cpu[wt_c].flags,
            cpu[wt_c].percpu);
     wt_c++
  :: else -> break
  od;
  printf("GL %d %d %d %d\n", g_key, g_pinned_lo, g_pinned_hi, g_flags)
}

/* One event: the body of bfs.explore's `for ev in moves` loop, run inside
 * the atomic sequence of the CPU's process that chose it. The EV line is
 * fuzzinit.orderings.schedule.Event(cpu, op, slot, trigger): `spin -t`
 * replays a counterexample as these lines. */
inline event(c, op, slot, trigger) {   /* bfs.explore: one move */
  d_step { printf("EV %d %d %d %d\n", c, op, slot, trigger); step_warnings = 0 };
  step(c, op, ev_out);
  d_step {
#ifdef TRACE
    trace_state();
#endif
    oracle(ev_out);
    if
    :: ev_out == OK ->
       take(c, op, slot, trigger);
       if
       :: step_warnings > 0 -> bfs_warned = true    /* warned or bool(warnings) */
       :: else -> skip
       fi
    :: else -> skip
    fi;
    op = 0; slot = 0; trigger = 0;      /* the process's choice, cleared */
    st_before_lo = 0; st_before_hi = 0; ev_out = 0; step_warnings = 0
  }
}

/* Schedule.finished() is false */
inline unfinished(out) {   /* not Schedule.finished() */
  out = false; wt_c = 0;
  do
  :: wt_c < NCPU ->
     if
     :: s_first[wt_c] < prog_len[wt_c] -> out = true
     :: else -> skip
     fi;
     wt_c++
  :: else -> break
  od;
  skip   /* `break` lands here, inside any enclosing d_step */
}

/* bfs.explore's checks of a state with no move: it runs once every CPU
 * process is blocked (timeout). The guards leave out the events the model
 * rules out (INVALID), so a timeout is bfs's "no move, or every move
 * INVALID". One d_step: its temporaries are `hidden`. */
proctype watcher() {
  timeout ->
  d_step {
    if
    :: halted -> skip                   /* the run ended: nothing to check */
    :: !halted ->
       printf("STUCK\n");
       unfinished(wt_unfinished);
       if
       :: wt_unfinished && FAIL_ON_NEVER_ONLINE ->
          fail_never_online = true; assert(!fail_never_online)
       :: else -> skip
       fi;
       if
       :: bfs_warned && FAIL_ON_WARN -> fail_warn = true; assert(!fail_warn)
       :: else -> skip
       fi
    fi
  }
}
