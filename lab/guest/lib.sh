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
# names a function's ftrace record may carry: SYSCALL_DEFINE0 makes __x64_sys_X an alias of __do_sys_X
names_re() { case "$1" in __x64_sys_*) echo "($1|__do_sys_${1#__x64_sys_})" ;; *) echo "$1" ;; esac; }
# one line of the console per message (no newlines inside)
oneline() { tr '\n' ' ' | tr -s ' '; }

lp_wait() {  # wait until livepatch $1 has no transition in progress (max ~20 s)
	n=0
	while [ -f $LP/$1/transition ] && [ "$(cat $LP/$1/transition 2>/dev/null)" = 1 ] && [ $n -lt 400 ]; do
		usleep 50000; n=$((n+1))
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
	livepatch) [ "$(cat $LP/$2/enabled 2>/dev/null)" = 1 ] ;;
	kprobe|kprobe-post|kretprobe)
		t=k; [ $1 = kretprobe ] && t=r
		re="  $t  $(names_re $3)\+0x0"
		[ -d /sys/module/$2 ] && grep -Eq "$re" $DBG/kprobes/list 2>/dev/null && ! grep -E "$re" $DBG/kprobes/list | grep -q DISABLED ;;
	ftrace-ops|direct) [ "$(cat /sys/module/$2/initstate 2>/dev/null)" = live ] ;;
	bpf-*) [ -e /sys/fs/bpf/$4 ] ;;
	function-tracer) [ "$(cat $TI/current_tracer)" = function ] && grep -q "^$3\$" $TI/set_ftrace_filter ;;
	function-graph) [ "$(cat $T/current_tracer)" = function_graph ] && grep -q "^$3\$" $T/set_graph_function ;;
	fail-function) grep -q "^$3\$" $DBG/fail_function/inject 2>/dev/null ;;
	*) false ;;
	esac
}

wr() {  # write $1 to file $2, print the error message if any
	{ echo "$1" > "$2"; } 2>&1 | oneline
}

owner_var() {  # the variable that names the handle owning a module or tracer slot
	case "$1" in
	function-tracer) echo owner_ft ;; function-graph) echo owner_fg ;; fail-function) echo owner_ff ;;
	bpf-*|fprobe*) echo "" ;; *) echo "owner_$2" ;;
	esac
}

do_attach() {  # consumer slot function handle -> prints error text (empty = success) ; sets rc
	c=$1; s=$2; f=$3; h=$4; msg=""; rc=0
	ov=$(owner_var $c $s)
	if [ -n "$ov" ] && [ -n "$(eval echo \$$ov)" ]; then
		msg="UNAVAILABLE $c: its one module or tracer slot is taken by $(eval echo \$$ov)"; rc=1; return
	fi
	do_attach1 "$@"
	[ -n "$ov" ] && attached $c $s $f $h && eval $ov=$h
}

do_attach1() {
	case "$c" in
	livepatch)
		msg=$(insmod /lab/mod/$s.ko func=$f 2>&1 | oneline); [ -d /sys/module/$s ] || rc=1
		lp_wait $s ;;
	kprobe|kprobe-post|kretprobe|ftrace-ops|direct)
		msg=$(insmod /lab/mod/$s.ko func=$f 2>&1 | oneline); [ -d /sys/module/$s ] || rc=1 ;;
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
	ov=$(owner_var $c $s)
	if [ -n "$ov" ]; then
		if [ "$(eval echo \$$ov)" != "$h" ]; then msg="NOFILE $h was not attached"; rc=1; return; fi
		eval $ov=
	fi
	case "$c" in
	livepatch)
		if [ -d $LP/$s ]; then
			msg=$(wr 0 $LP/$s/enabled); lp_wait $s
			n=0; while [ -d $LP/$s ] && [ $n -lt 200 ]; do usleep 50000; n=$((n+1)); done
		fi
		m2=$(rmmod $s 2>&1 | oneline); [ -z "$msg" ] && msg=$m2 ;;
	kprobe|kprobe-post|kretprobe|ftrace-ops|direct)
		msg=$(rmmod $s 2>&1 | oneline) ;;
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
	k=$(dmesg -c 2>/dev/null | grep -E "WARNING:|BUG:|Oops|livepatch:|ftrace|bpf|kprobe|Call Trace|RIP:" | grep -v "FTSLAB" | head -12 | oneline)
	[ -n "$k" ] && out "KMSG $1 $k"
	r=$(grep -E "^$(names_re $2) " $T/enabled_functions | head -1 | tr '\t' ' ')
	out "REC $1 $r"
	[ -z "$r" ] && [ -n "$(cat $T/enabled_functions)" ] && out "RECALL $1 $(cat $T/enabled_functions | head -3 | oneline)"
}

S() { out "SCEN $1"; dmesg -c >/dev/null 2>&1; }

A() {  # idx consumer slot function handle
	out "STEP $1"
	do_attach $2 $3 $4 $5
	out "RET $1 $rc $msg"
	if attached $2 $3 $4 $5; then out "ATT $1 1"; else out "ATT $1 0"; fi
	report $1 $4
}

D() {
	out "STEP $1"
	do_detach $2 $3 $4 $5
	out "RET $1 $rc $msg"
	if attached $2 $3 $4 $5; then out "ATT $1 1"; else out "ATT $1 0"; fi
	report $1 $4
}

counters() {  # "consumer:slot:handle ..." -> "handle=hits[/lastret] ..."
	for e in $1; do
		c=${e%%:*}; r=${e#*:}; s=${r%%:*}; h=${r#*:}
		if [ -f /sys/module/$s/parameters/hits ]; then
			echo "$h=$(cat /sys/module/$s/parameters/hits)/$(cat /sys/module/$s/parameters/lastret)"
		fi
	done
}

C() {  # idx function "live handles"
	out "STEP $1"
	echo > $T/trace; echo > $TI/trace
	before=$(counters "$3" | oneline)
	case "$2" in
	cmdline_proc_show) v=$(cat /proc/cmdline 2>&1 | oneline) ;;
	security_task_getscheduler) v=$(/lab/trig 145 2>&1 | oneline) ;;
	__x64_sys_getppid) v=$(/lab/trig 110 2>&1 | oneline) ;;
	__x64_sys_getpid) v=$(/lab/trig 39 2>&1 | oneline) ;;
	*) v="UNKNOWN" ;;
	esac
	after=$(counters "$3" | oneline)
	out "VAL $1 $v"
	out "CNT0 $1 $before"
	out "CNT1 $1 $after"
	grep FTSLAB $T/trace | sed 's/.*FTSLAB/FTSLAB/' | while read -r l; do out "BPF $1 $l"; done
	n=$(grep -v FTSLAB $T/trace | grep -v '^#' | grep -c "$2"); out "FG $1 $n"
	n=$(grep -v '^#' $TI/trace | grep -c "$2"); out "FT $1 $n"
	report $1 $2
}

Z() {  # cleanup of what a scenario left attached: "consumer:slot:function:handle ..." newest first
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
}

U() {  # a step the lab cannot run (e.g. a second handle of a one-module consumer)
	out "STEP $1"; out "RET $1 1 UNAVAILABLE $2: one module per consumer in the lab"; out "ATT $1 0"
}
