# ftsim kernel lab: guest side.  The host writes /lab/steps.sh as calls of
#   S <file> ; A <idx> <consumer> <slot> <function> <handle> ; D <idx> <consumer> <slot> <function> <handle>
#   C <idx> <function> "<consumer:slot:handle> ..." ; Z "<consumer:slot:function:handle> ..." (cleanup, newest first)
# and the guest prints @@ lines on the console which the host turns into JSON.
T=/sys/kernel/tracing
TI=$T/instances/lab
LP=/sys/kernel/livepatch
DBG=/sys/kernel/debug
BPFO=/lab/bpf/progs.bpf.o
mkdir -p $TI 2>/dev/null
echo 0 > $T/tracing_on; echo 1 > $T/tracing_on

out() { echo "@@$*"; }
# the guest clock (seconds since boot, 10 ms steps) on every STEP line and @@T marks: lab/tools/step_times.py
stamp() { read up _ </proc/uptime; out "$@ $up"; }
# names a function's ftrace record may carry: SYSCALL_DEFINE0 makes __x64_sys_X an alias of __do_sys_X
names_re() { case "$1" in __x64_sys_*) echo "($1|__do_sys_${1#__x64_sys_})" ;; *) echo "$1" ;; esac; }
nre() { case "$1" in __x64_sys_*) NRE="($1|__do_sys_${1#__x64_sys_})" ;; *) NRE=$1 ;; esac; }  # same, no fork
# one line of the console per message (no newlines inside)
oneline() { tr '\n' ' ' | tr -s ' '; }
# Speed: under TCG every fork costs 3-5 ms of guest time, so the hot paths below read small files with the
# shell's own `read` and filter with one awk instead of pipelines of grep/head/tr.
rd() { RV=; { read -r RV < "$1"; } 2>/dev/null; }   # first line of file $1 -> $RV ("" if unreadable)
# run a command; its output (stdout+stderr) as one line in $msg, without forks when it printed nothing
run1() { "$@" >/tmp/o 2>&1; msg=; [ -s /tmp/o ] && msg=$(oneline </tmp/o); }

lp_wait() {  # wait until livepatch $1 has no transition in progress (max ~20 s; polls every 10 ms)
	n=0
	while [ -f $LP/$1/transition ] && rd $LP/$1/transition && [ "$RV" = 1 ] && [ $n -lt 2000 ]; do
		usleep 10000; n=$((n+1))
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

# is the consumer really attached, by kernel state
attached() {  # consumer slot function handle
	case "$1" in
	livepatch) rd $LP/$2/enabled; [ "$RV" = 1 ] ;;
	kprobe|kprobe-post|kretprobe)
		t=k; [ $1 = kretprobe ] && t=r
		nre $3
		# some line of the list is this probe, and none of those lines says DISABLED
		[ -d /sys/module/$2 ] && awk -v re="  $t  ($NRE)[+]0x0" '$0 ~ re { f = 1; if (/DISABLED/) d = 1 }
			END { exit !(f && !d) }' $DBG/kprobes/list 2>/dev/null ;;
	ftrace-ops|direct) rd /sys/module/$2/initstate; [ "$RV" = live ] ;;
	bpf-*) [ -e /sys/fs/bpf/$4 ] ;;
	function-tracer) rd $TI/current_tracer; [ "$RV" = function ] && grep -q "^$3\$" $TI/set_ftrace_filter ;;
	function-graph) rd $T/current_tracer; [ "$RV" = function_graph ] && grep -q "^$3\$" $T/set_graph_function ;;
	fail-function) grep -q "^$3\$" $DBG/fail_function/inject 2>/dev/null ;;
	*) false ;;
	esac
}

wr() {  # write $1 to file $2, print the error message if any
	{ echo "$1" > "$2"; } 2>&1 | oneline
}

owner_var() {  # $ov = the variable that names the handle owning a module or tracer slot; $own = its value
	case "$1" in
	function-tracer) ov=owner_ft ;; function-graph) ov=owner_fg ;; fail-function) ov=owner_ff ;;
	bpf-*|fprobe*) ov="" ;; *) ov="owner_$2" ;;
	esac
	own=; [ -n "$ov" ] && eval "own=\$$ov"
}

do_attach() {  # consumer slot function handle -> prints error text (empty = success) ; sets rc
	c=$1; s=$2; f=$3; h=$4; msg=""; rc=0
	owner_var $c $s
	if [ -n "$ov" ] && [ -n "$own" ]; then
		msg="UNAVAILABLE $c: its one module or tracer slot is taken by $own"; rc=1; return
	fi
	do_attach1 "$@"
	[ -n "$ov" ] && attached $c $s $f $h && eval $ov=$h
}

do_attach1() {
	case "$c" in
	livepatch)
		run1 insmod /lab/mod/$s.ko func=$f; [ -d /sys/module/$s ] || rc=1
		lp_wait $s ;;
	kprobe|kprobe-post|kretprobe|ftrace-ops|direct)
		run1 insmod /lab/mod/$s.ko func=$f; [ -d /sys/module/$s ] || rc=1 ;;
	bpf-*)
		p=$(kind_of $c $f)
		msg=$(/lab/bpf/bpfl $BPFO $p $f /sys/fs/bpf/$h $s 2>/dev/null | grep BPFL)
		case "$msg" in "BPFL 0") msg="" ;; *) rc=1 ;; esac ;;
	function-tracer)
		msg=$(wr "$f" $TI/set_ftrace_filter)
		[ -z "$msg" ] && msg=$(wr function $TI/current_tracer)
		[ -n "$msg" ] && rc=1 ;;
	function-graph)
		msg=$(wr "$f" $T/set_graph_function)
		[ -z "$msg" ] && msg=$(wr "$f" $T/set_ftrace_filter)
		[ -z "$msg" ] && msg=$(wr function_graph $T/current_tracer)
		[ -n "$msg" ] && rc=1 ;;
	fail-function)
		if [ ! -d $DBG/fail_function ]; then msg="NOFILE $DBG/fail_function"; rc=1
		else
			msg=$(wr "$f" $DBG/fail_function/inject)
			if [ -z "$msg" ]; then
				wr 100 $DBG/fail_function/probability >/dev/null; wr 1 $DBG/fail_function/interval >/dev/null
				wr -1 $DBG/fail_function/times >/dev/null; wr 0 $DBG/fail_function/verbose >/dev/null
				wr 0xfffffffffffff05d $DBG/fail_function/$f/retval >/dev/null
			else rc=1; fi
		fi ;;
	fprobe|fprobe-exit) msg="UNAVAILABLE CONFIG_FPROBE is off"; rc=1 ;;
	*) msg="UNAVAILABLE unknown consumer $c"; rc=1 ;;
	esac
}

do_detach() {  # consumer slot function handle
	c=$1; s=$2; f=$3; h=$4; msg=""; rc=0
	owner_var $c $s
	if [ -n "$ov" ]; then
		if [ "$own" != "$h" ]; then msg="NOFILE $h was not attached"; rc=1; return; fi
		eval $ov=
	fi
	case "$c" in
	livepatch)
		if [ -d $LP/$s ]; then
			msg=$(wr 0 $LP/$s/enabled); lp_wait $s
			n=0; while [ -d $LP/$s ] && [ $n -lt 1000 ]; do usleep 10000; n=$((n+1)); done
		fi
		m1=$msg; run1 rmmod $s; [ -n "$m1" ] && msg=$m1 ;;
	kprobe|kprobe-post|kretprobe|ftrace-ops|direct)
		run1 rmmod $s ;;
	bpf-*)
		if [ -e /sys/fs/bpf/$h ]; then rm -f /sys/fs/bpf/$h; else msg="NOFILE /sys/fs/bpf/$h"; fi ;;
	function-tracer) msg=$(wr nop $TI/current_tracer); wr "" $TI/set_ftrace_filter >/dev/null ;;
	function-graph) msg=$(wr nop $T/current_tracer); wr "" $T/set_graph_function >/dev/null; wr "" $T/set_ftrace_filter >/dev/null ;;
	fail-function)
		if [ -d $DBG/fail_function ]; then msg=$(wr "!$f" $DBG/fail_function/inject); else msg="NOFILE $DBG/fail_function"; fi ;;
	*) msg="UNAVAILABLE $c" ;;
	esac
	[ -n "$msg" ] && rc=1
}

report() {  # idx function ; kernel messages since the last step, and the record
	# KMSG: up to 12 matching kernel lines as one line; REC: the function's enabled_functions line (tabs
	# as spaces); RECALL: the first 3 lines when the function has none but others do.  One awk, no pipes.
	nre $2
	dmesg -c 2>/dev/null | awk -v i=$1 -v re="^($NRE) " '
		FILENAME == "-" { if (/WARNING:|BUG:|Oops|livepatch:|ftrace|bpf|kprobe|Call Trace|RIP:/ && !/FTSLAB/ && nk < 12) { k = k $0 " "; nk++ }; next }
		{ na++; if (na <= 3) all = all $0 " " }
		!found && $0 ~ re { found = 1; r = $0; gsub(/\t/, " ", r) }
		END {
			gsub(/ +/, " ", k); gsub(/ +/, " ", all)
			if (k != "") print "@@KMSG " i " " k
			print "@@REC " i " " r
			if (!found && na) print "@@RECALL " i " " all
		}' - $T/enabled_functions
}

S() { out "SCEN $1"; dmesg -c >/dev/null 2>&1; }

A() {  # idx consumer slot function handle
	stamp STEP $1
	do_attach $2 $3 $4 $5
	out "RET $1 $rc $msg"
	if attached $2 $3 $4 $5; then out "ATT $1 1"; else out "ATT $1 0"; fi
	report $1 $4
}

D() {
	stamp STEP $1
	do_detach $2 $3 $4 $5
	out "RET $1 $rc $msg"
	if attached $2 $3 $4 $5; then out "ATT $1 1"; else out "ATT $1 0"; fi
	report $1 $4
}

counters() {  # "consumer:slot:handle ..." -> $cnt = "handle=hits/lastret ..."
	cnt=
	for e in $1; do
		c=${e%%:*}; r=${e#*:}; s=${r%%:*}; h=${r#*:}
		if [ -f /sys/module/$s/parameters/hits ]; then
			rd /sys/module/$s/parameters/hits; x=$RV; rd /sys/module/$s/parameters/lastret
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

C() {  # idx function "live handles"
	stamp STEP $1
	trace_clear $T; trace_clear $TI
	counters "$3"; before=$cnt
	case "$2" in
	cmdline_proc_show) v=$(cat /proc/cmdline 2>&1 | oneline) ;;
	security_task_getscheduler) v=$(/lab/trig 145 2>&1 | oneline) ;;
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

Z() {  # cleanup of what a scenario left attached: "consumer:slot:function:handle ..." newest first
	stamp T Z
	for e in $1; do
		c=${e%%:*}; r=${e#*:}; s=${r%%:*}; r=${r#*:}; f=${r%%:*}; h=${r#*:}
		do_detach $c $s $f $h
		out "CLEAN $c $h $rc $msg"
	done
	left=$(cat $T/enabled_functions | oneline)
	[ -n "$left" ] && { usleep 200000; left=$(cat $T/enabled_functions | oneline); }
	out "LEFT $left"
	kl=$(cat $DBG/kprobes/list 2>/dev/null | oneline)
	[ -n "$kl" ] && out "LEFTKP $kl"
	dmesg -c >/dev/null 2>&1
	stamp T ZEND
}

U() {  # a step the lab cannot run (e.g. a second handle of a one-module consumer)
	stamp STEP $1; out "RET $1 1 UNAVAILABLE $2: one module per consumer in the lab"; out "ATT $1 0"
}
