# ftsim kernel lab: guest side.  The host writes /lab/steps.sh as calls of
#   S <file> "<functions>"                        a scenario file starts (its target functions)
#   A <idx> <consumer> <function> <handle> "<module slots>"   attach (slots: modules the consumer may use)
#   D <idx> <consumer> <function> <handle>        detach what that handle attached
#   C <idx> <function> "<consumer:handle> ..."    call the function; the handles live by the scenario text
#   Z "<consumer:function:handle> ..."            cleanup of what the file left attached, newest first
# and the guest prints @@ lines on the console which the host (lab/run.py) turns into JSON.
#
# Ownership: a module slot (lab_kp_post, lab_lp_a, ...) belongs to the handle whose insmod succeeded, whether or
# not the consumer ended up attached (from 6.14 a kprobe refused by ftrace is told 0 and not armed, yet its
# module stays loaded); that handle's detach unloads it.  A handle whose attach failed owns nothing, and its
# detach is recorded -ENOENT ("not attached") without touching the kernel.
T=/sys/kernel/tracing
TI=$T/instances/lab
LP=/sys/kernel/livepatch
DBG=/sys/kernel/debug
BPFO=/lab/bpf/progs.bpf.o
mkdir -p $TI 2>/dev/null
echo 0 > $T/tracing_on; echo 1 > $T/tracing_on
{ read -r TAINT0 < /proc/sys/kernel/tainted; } 2>/dev/null; TAINT0=${TAINT0:-0}   # a WARN at boot does not count

out() { echo "@@$*"; }
# sleep without a fork (usleep is one, 3-5 ms of guest time under TCG): a read with a timeout on a fifo
# nobody writes to
mkfifo /tmp/nap 2>/dev/null; exec 9<>/tmp/nap
nap() { read -t $1 _ <&9; }
# the guest clock (seconds since boot, 10 ms steps) on every STEP line and @@T marks: lab/tools/step_times.py
stamp() { read up _ </proc/uptime; out "$@ $up"; }
# names a function's ftrace record and kprobe may carry: SYSCALL_DEFINE0 makes __x64_sys_X an alias of
# __do_sys_X (and of __ia32_sys_X with IA32_EMULATION)
nre() { case "$1" in __x64_sys_*) NRE="($1|__do_sys_${1#__x64_sys_}|__ia32_sys_${1#__x64_sys_})" ;; *) NRE=$1 ;; esac; }
# one line of the console per message (no newlines inside)
oneline() { tr '\n' ' ' | tr -s ' '; }
# Speed: under TCG every fork costs 3-5 ms of guest time, so the hot paths below read small files with the
# shell's own `read` and filter with one awk instead of pipelines of grep/head/tr.
rd() { RV=; { read -r RV < "$1"; } 2>/dev/null; }   # first line of file $1 -> $RV ("" if unreadable)
# run a command; its output (stdout+stderr) as one line in $msg, without forks when it printed nothing
run1() { "$@" >/tmp/o 2>&1; msg=; [ -s /tmp/o ] && msg=$(oneline </tmp/o); }
# per-handle variables: handles may contain - and . (not allowed in shell names)
hv() { HV=${1//-/_}; HV=${HV//./_}; }             # no fork: handles are letters, digits, _ - . (FORMAT.md)
getv() { hv "$2"; eval "V=\${$1_$HV:-}"; }          # getv slot h -> $V
setv() { hv "$2"; eval "$1_$HV=\$3"; }              # setv slot h value

lp_wait() {  # wait until livepatch $1 has no transition in progress (max ~20 s; polls every 10 ms)
	n=0
	while [ -f $LP/$1/transition ] && rd $LP/$1/transition && [ "$RV" = 1 ] && [ $n -lt 2000 ]; do
		nap 0.01; n=$((n+1))
	done
}

kind_of() {  # bpf consumer -> program name
	case "$1:$2" in
	bpf-fentry:*) echo fentry_p ;;
	bpf-fexit:cmdline_proc_show) echo fexit_cmdline ;;
	bpf-fexit:*) echo fexit_sched ;;
	bpf-fmod-ret:*) echo fmodret_err ;;
	bpf-fmod-ret-pass:*) echo fmodret_pass ;;
	bpf-override-return:*) echo override_p ;;
	esac
}

# kprobes/list lines of probes of type $1 (k or r) on function $2 that are armed (no DISABLED); IBT kernels
# (CONFIG_X86_KERNEL_IBT, Debian 6.12+) put a probe on func at func+0x4, behind the ENDBR
kp_listed() {
	nre $2
	KL=$(awk -v re="  $1  ($NRE)[+]0x[04] " '$0 " " ~ re && !/DISABLED/ { n++ } END { print n + 0 }' $DBG/kprobes/list 2>/dev/null)
}
kp_type() { case "$1" in kretprobe) KT=r ;; *) KT=k ;; esac; }
# handles owning a loaded kprobe module of type $1 on function $2 whose probe was armed at its attach
kp_armed_owners() {
	KA=0
	for e in $OWNED; do
		c=${e%%:*}; r=${e#*:}; f=${r%%:*}; h=${r#*:}
		kp_type $c; [ "$KT" = $1 ] && [ "$f" = $2 ] || continue
		getv armed $h; [ "$V" = 1 ] && KA=$((KA+1))
	done
}

# is the consumer really attached, by kernel state
attached() {  # consumer function handle
	getv slot $3; s=$V
	case "$1" in
	livepatch) [ -n "$s" ] && rd $LP/$s/enabled && [ "$RV" = 1 ] ;;
	kprobe|kprobe-post|kretprobe)
		# armed when its insmod added a line to kprobes/list, and the list still has a line for every
		# probe of that type on the function that was armed that way (one probe per module)
		[ -n "$s" ] && [ -d /sys/module/$s ] || return 1
		getv armed $3; [ "$V" = 1 ] || return 1
		kp_type $1; kp_listed $KT $2; kp_armed_owners $KT $2
		[ "$KL" -ge "$KA" ] ;;
	ftrace-ops|direct|fprobe|fprobe-exit) [ -n "$s" ] && rd /sys/module/$s/initstate && [ "$RV" = live ] ;;
	bpf-*) [ -e /sys/fs/bpf/$3 ] ;;
	function-tracer) rd $TI/current_tracer; nre $2; [ "$RV" = function ] && grep -Eq "^$NRE\$" $TI/set_ftrace_filter ;;
	function-graph) rd $T/current_tracer; nre $2; [ "$RV" = function_graph ] && grep -Eq "^$NRE\$" $T/set_graph_function ;;
	fail-function) nre $2; [ -n "$s" ] && grep -Eq "^$NRE\$" $DBG/fail_function/inject 2>/dev/null ;;
	*) false ;;
	esac
}

wr() {  # write $1 to file $2, print the error message if any
	{ echo "$1" > "$2"; } 2>&1 | oneline
}
# write function $2 to the tracefs filter file $1, or the first of its alias names the file accepts (a
# record is named by one of __x64_sys_X, __do_sys_X, __ia32_sys_X) -> $msg: the first name's error, if none
wr_name() {
	msg=$(wr "$2" $1); [ -z "$msg" ] && return
	case "$2" in __x64_sys_*)
		for a in __do_sys_${2#__x64_sys_} __ia32_sys_${2#__x64_sys_}; do
			m2=$(wr "$a" $1); [ -z "$m2" ] && { msg=""; return; }
		done ;;
	esac
}

OWNED=""          # "consumer:function:handle ..." of the handles owning a slot, attach order
own() { setv slot $3 $4; OWNED="$OWNED $1:$2:$3"; }
disown() {
	setv slot $3 ""; setv armed $3 ""; n=""
	for e in $OWNED; do [ "$e" = "$1:$2:$3" ] || n="$n $e"; done; OWNED=$n
}
slot_busy() {  # is module slot $1 owned by a live handle?
	for e in $OWNED; do getv slot ${e##*:}; [ "$V" = $1 ] && return 0; done; return 1
}

do_attach() {  # consumer function handle slots -> $rc, $msg (empty = success)
	c=$1; f=$2; h=$3; msg=""; rc=0; s=""
	# consumers this kernel does not have (/lab/caps.sh, written by the host from the kernel's config)
	hv $c; eval "nb=\${NOTBUILT_$HV:-}"
	if [ -n "$nb" ]; then msg="UNAVAILABLE $c: $nb"; rc=1; setv unrun $h "$msg"; return; fi
	case "$c" in
	function-tracer|function-graph)
		for e in $OWNED; do case "$e" in $c:*) msg="UNAVAILABLE $c: one tracer instance in the lab, taken by ${e##*:}"; rc=1; setv unrun $h "$msg"; return ;; esac; done ;;
	esac
	if [ -n "$4" ]; then
		for x in $4; do slot_busy $x || { s=$x; break; }; done
		if [ -z "$s" ]; then msg="UNAVAILABLE $c: the lab's modules for it ($4) are all taken"; rc=1; setv unrun $h "$msg"; return; fi
		[ -f /lab/mod/$s.ko ] || { msg="UNAVAILABLE $c: module $s not built for this kernel"; rc=1; setv unrun $h "$msg"; return; }
		out "SLOT $IDX $s"
	fi
	do_attach1
	# ownership: a loaded module, a pinned link, an accepted tracefs/debugfs write
	case "$c" in
	livepatch|kprobe|kprobe-post|kretprobe|ftrace-ops|direct|fprobe|fprobe-exit)
		[ -d /sys/module/$s ] && own $c $f $h $s ;;
	bpf-*) [ -e /sys/fs/bpf/$h ] && own $c $f $h bpf ;;
	*) [ $rc = 0 ] && own $c $f $h - ;;
	esac
}

do_attach1() {
	case "$c" in
	livepatch)
		run1 insmod /lab/mod/$s.ko func=$f; [ -d /sys/module/$s ] || rc=1
		lp_wait $s ;;
	kprobe|kprobe-post|kretprobe)
		kp_type $c; kp_listed $KT $f; before=$KL
		run1 insmod /lab/mod/$s.ko func=$f; [ -d /sys/module/$s ] || rc=1
		kp_listed $KT $f; [ "$KL" -gt "$before" ] && setv armed $h 1 ;;
	ftrace-ops|direct|fprobe|fprobe-exit)
		run1 insmod /lab/mod/$s.ko func=$f; [ -d /sys/module/$s ] || rc=1 ;;
	fail-function)
		msg=$(wr "$f" $DBG/fail_function/inject)
		if [ -z "$msg" ]; then
			wr 100 $DBG/fail_function/probability >/dev/null; wr 1 $DBG/fail_function/interval >/dev/null
			wr -1 $DBG/fail_function/times >/dev/null; wr 0 $DBG/fail_function/verbose >/dev/null
			wr 0xfffffffffffff05d $DBG/fail_function/$f/retval >/dev/null
		else rc=1; fi ;;
	bpf-*) bpf_attach ;;
	function-tracer)
		wr_name $TI/set_ftrace_filter $f
		[ -z "$msg" ] && msg=$(wr function $TI/current_tracer)
		[ -n "$msg" ] && rc=1 ;;
	function-graph)
		wr_name $T/set_graph_function $f
		[ -z "$msg" ] && wr_name $T/set_ftrace_filter $f
		[ -z "$msg" ] && msg=$(wr function_graph $T/current_tracer)
		[ -n "$msg" ] && rc=1 ;;
	*) msg="UNAVAILABLE the lab has no way to attach $c"; rc=1 ;;
	esac
}

bpf_attach() {
	p=$(kind_of $c $f)
	msg=$(/lab/bpf/bpfl $BPFO $p $f /sys/fs/bpf/$h $IDX 2>/tmp/bpfl.err | grep BPFL)
	# on failure the note keeps libbpf's last words (the verifier's or the kernel's reason)
	case "$msg" in "BPFL 0") msg="" ;; *) rc=1; msg="$msg: $(grep -v -e "^--" -e "^libbpf: prog" -e "^libbpf: failed to load object" /tmp/bpfl.err | tail -4 | oneline | cut -c1-400)" ;; esac
}

do_detach() {  # consumer function handle
	c=$1; f=$2; h=$3; msg=""; rc=0
	getv slot $h; s=$V
	getv unrun $h; [ -n "$V" ] && { msg="UNAVAILABLE its attach was not run ($V)"; rc=1; return; }
	if [ -z "$s" ]; then msg="NOFILE $h was not attached"; rc=1; return; fi
	disown $c $f $h
	case "$c" in
	livepatch)
		if [ -d $LP/$s ]; then
			msg=$(wr 0 $LP/$s/enabled); lp_wait $s
			n=0; while [ -d $LP/$s ] && [ $n -lt 1000 ]; do nap 0.01; n=$((n+1)); done
		fi
		m1=$msg; run1 rmmod $s; [ -n "$m1" ] && msg=$m1 ;;
	kprobe|kprobe-post|kretprobe|ftrace-ops|direct|fprobe|fprobe-exit)
		run1 rmmod $s ;;
	bpf-*)
		if [ -e /sys/fs/bpf/$h ]; then rm -f /sys/fs/bpf/$h; else msg="NOFILE /sys/fs/bpf/$h"; fi ;;
	function-tracer) msg=$(wr nop $TI/current_tracer); wr "" $TI/set_ftrace_filter >/dev/null ;;
	function-graph) msg=$(wr nop $T/current_tracer); wr "" $T/set_graph_function >/dev/null; wr "" $T/set_ftrace_filter >/dev/null ;;
	fail-function) msg=$(wr "!$f" $DBG/fail_function/inject) ;;
	*) msg="UNAVAILABLE $c" ;;
	esac
	[ -n "$msg" ] && rc=1
}

recline() {  # the function's enabled_functions line (tabs as spaces) -> $RL; $RA: the first 3 lines of the file
	awk -v re="^($NRE) " '
		{ na++; if (na <= 3) all = all $0 " " }
		!found && $0 ~ re { found = 1; r = $0; gsub(/\t/, " ", r) }
		END { gsub(/[ \t]+/, " ", all); print r "|" all > "/tmp/rec" }' $T/enabled_functions
	read -r RL < /tmp/rec; RA=${RL#*|}; RL=${RL%%|*}
}

report() {  # idx function ; kernel messages since the last step, and the record
	# KMSG: up to 12 matching kernel lines as one line.  REC: the function's enabled_functions line, read
	# until two reads 10 ms apart agree (7.x: a read right after a BPF trampoline update can show one ops
	# too many for a moment); RECFIRST: the first read, when it differed; RECALL: the file's first lines
	# when the function has none.  The first read is done by the awk that filters dmesg.
	nre $2
	dmesg -c 2>/dev/null | awk -v i=$1 -v re="^($NRE) " '
		FILENAME == "-" { if (/WARNING:|BUG:|Oops|livepatch:|ftrace|bpf|kprobe|Call Trace|RIP:|fprobe/ && !/FTSLAB/ && nk < 12) { k = k $0 " "; nk++ }; next }
		{ na++; if (na <= 3) all = all $0 " " }
		!found && $0 ~ re { found = 1; r = $0; gsub(/\t/, " ", r) }
		END { gsub(/ +/, " ", k); if (k != "") print "@@KMSG " i " " k
		      gsub(/[ \t]+/, " ", all); print r "|" all > "/tmp/rec" }' - $T/enabled_functions
	read -r RL < /tmp/rec; RA=${RL#*|}; RL=${RL%%|*}
	first=$RL; n=0
	while :; do
		nap 0.01; prev=$RL; recline
		[ "$RL" = "$prev" ] && break
		n=$((n+1)); [ $n -ge 50 ] && break
	done
	out "REC $1 $RL"
	[ "$first" != "$RL" ] && out "RECFIRST $1 $first"
	[ -z "$RL" ] && [ -n "$RA" ] && out "RECALL $1 $RA"
}

S() {  # file "functions": a scenario file starts.  Which of its functions this boot has already modified: their
	# records keep the sticky M (FTRACE_FL_MODIFIED, 6.4+: set by any IPMODIFY or DIRECT ops) for the rest of
	# the boot; touched_functions lists every function ftrace ever enabled, with its flags.
	out "SCEN $1"; dmesg -c >/dev/null 2>&1; OWNED=""; SCENFILE=$1
	for v in $(set | sed -n 's/^\(unrun_[A-Za-z0-9_]*\)=.*/\1/p'); do unset $v; done
	if [ -f $T/touched_functions ]; then
		ml=""
		for f in $2; do
			nre $f
			awk -v re="^($NRE) " '$0 ~ re { split($0, a, /tramp:|->|ops:/); if (a[1] ~ / M( |\t|$)/) m = 1 } END { exit !m }' \
				$T/touched_functions && ml="$ml $f"
		done
		out "MODIFIED $1 $ml"
	fi
}

A() {  # idx consumer function handle "slots"
	IDX=$1
	stamp STEP $1
	do_attach $2 $3 $4 "$5"
	out "RET $1 $rc $msg"
	if attached $2 $3 $4; then out "ATT $1 1"; else out "ATT $1 0"; fi
	report $1 $3
}

D() {  # idx consumer function handle
	stamp STEP $1
	do_detach $2 $3 $4
	out "RET $1 $rc $msg"
	if [ -z "$s" ]; then out "ATT $1 0"; elif attached $2 $3 $4; then out "ATT $1 1"; else out "ATT $1 0"; fi
	report $1 $3
}

counters() {  # "consumer:handle ..." -> $cnt = "handle=hits/lastret ..." for the module consumers
	cnt=
	for e in $1; do
		h=${e#*:}; getv slot $h
		if [ -n "$V" ] && [ -f /sys/module/$V/parameters/hits ]; then
			rd /sys/module/$V/parameters/hits; x=$RV; rd /sys/module/$V/parameters/lastret
			cnt="$cnt$h=$x/$RV "
		fi
	done
}
# empty the trace buffer of $1 (the top level or an instance) unless it already is: a write to `trace`
# resets the ring buffer and waits for an RCU grace period, ~25 ms under TCG
trace_clear() {
	for st in $1/per_cpu/cpu*/stats; do
		e=; { read -r _ e < $st; } 2>/dev/null
		[ "$e" = 0 ] || { echo > $1/trace; return; }
	done
}

C() {  # idx function "consumer:handle ..."
	stamp STEP $1
	trace_clear $T; trace_clear $TI
	counters "$3"; before=$cnt
	case "$2" in
	cmdline_proc_show) v=$(cat /proc/cmdline 2>&1 | oneline) ;;
	security_task_getscheduler) v=$(/lab/trig 145 0 2>&1 | oneline) ;;      # sched_getscheduler(0)
	security_task_getioprio) v=$(/lab/trig 252 1 0 2>&1 | oneline) ;;       # ioprio_get(IOPRIO_WHO_PROCESS, 0)
	__x64_sys_getppid) v=$(/lab/trig 110 2>&1 | oneline) ;;
	__x64_sys_getpid) v=$(/lab/trig 39 2>&1 | oneline) ;;
	*) v="UNKNOWN" ;;
	esac
	counters "$3"; after=$cnt
	out "VAL $1 $v"
	out "CNT0 $1 $before"
	out "CNT1 $1 $after"
	# BPF: the bpf_printk lines; FG / FT: lines of the function graph / function tracer naming the function
	awk -v i=$1 -v fn="$2" -v ti=$TI/trace '
		FILENAME == ti { if (!/^#/ && index($0, fn)) ft++; next }
		/FTSLAB/ { l = $0; sub(/.*FTSLAB/, "FTSLAB", l); sub(/^[ \t]+/, "", l); sub(/[ \t]+$/, "", l); print "@@BPF " i " " l; next }
		!/^#/ && index($0, fn) { fg++ }
		END { print "@@FG " i " " fg + 0; print "@@FT " i " " ft + 0 }' $T/trace $TI/trace
	report $1 $2
}

Z() {  # cleanup of what a scenario left attached: "consumer:function:handle ..." newest first
	stamp T Z
	for e in $1; do
		c=${e%%:*}; r=${e#*:}; f=${r%%:*}; h=${r#*:}
		getv slot $h; [ -n "$V" ] || continue
		do_detach $c $f $h
		out "CLEAN $c $h $rc $msg"
	done
	left=$(cat $T/enabled_functions | oneline)
	[ -n "$left" ] && { nap 0.2; left=$(cat $T/enabled_functions | oneline); }
	out "LEFT $left"
	kl=$(cat $DBG/kprobes/list 2>/dev/null | oneline)
	[ -n "$kl" ] && out "LEFTKP $kl"
	dmesg -c >/dev/null 2>&1
	stamp T ZEND
	# a file during which the kernel warned (TAINT_WARN, bit 9) ends the boot: after a WARN the kernel may
	# have disabled ftrace (ftrace_kill) or kept a broken state; the host runs the next files in a fresh boot
	rd /proc/sys/kernel/tainted
	if [ $(( ${RV:-0} & 512 & ~TAINT0 )) != 0 ]; then out "STOP $SCENFILE"; stamp T END; out END; poweroff -f; fi
}
