#!/bin/sh
# numacert sysfs collector: prints, in one go, the sysfs files cadvisor reads to build the
# kubelet's view of the machine (nodes, CPUs, per-node memory, hugepages, distances, L3 ids).
#
# Portable on purpose: POSIX sh only (busybox ash, dash, bash), builtins plus nothing else,
# because it runs on lab guests over SSH and inside arbitrary pod images via `kubectl exec`.
# Feed it on stdin:   sh -s < collect.sh     (or: numacert topology --print-collector | ssh node sh -s)
#
# Output: one `key<TAB>value` line per file read, first line `numacert-sysfs<TAB>1`, last line
# `end<TAB>ok` (so a truncated transfer is detected). Absent files print no line; the parser
# decides which ones are required. SYSFS_ROOT (default empty) prefixes every path, for tests.

R="${SYSFS_ROOT:-}"
S="$R/sys/devices/system"

NL='
'

# first FILE: sets $v to the file's first line. `cat`, not the `read` builtin: shells read one
# byte at a time, and sysfs list files (cpulist, thread_siblings_list) are binary attributes
# that return nothing to such reads on recent kernels.
first() {
    v=$(cat "$1" 2>/dev/null) || v=""
    v="${v%%"$NL"*}"
}

# emit KEY FILE: one line with the file's first line. Sysfs values are single lines; keeping
# only the first keeps the output line-oriented even if a file is garbled.
emit() {
    if [ -f "$2" ]; then
        first "$2"
        printf '%s\t%s\n' "$1" "$v"
    fi
}

printf 'numacert-sysfs\t1\n'
emit online "$S/cpu/online"

for d in "$S"/node/node*; do
    [ -d "$d" ] || continue
    n="${d##*/node}"
    case "$n" in '' | *[!0-9]*) continue ;; esac
    printf 'node\t%s\n' "$n"
    emit "node/$n/cpulist" "$d/cpulist"
    emit "node/$n/distance" "$d/distance"
    if [ -f "$d/meminfo" ]; then
        # Only what follows MemTotal: (cadvisor's regexp); an empty value means no such line.
        m=$(cat "$d/meminfo" 2>/dev/null) || m=""
        case "$m" in
            *MemTotal:*) m="${m#*MemTotal:}"; m="MemTotal:${m%%"$NL"*}" ;;
            *) m="" ;;
        esac
        printf 'node/%s/memtotal\t%s\n' "$n" "$m"
    fi
    for h in "$d"/hugepages/hugepages-*; do
        [ -d "$h" ] || continue
        emit "node/$n/hugepages/${h##*/hugepages-}" "$h/nr_hugepages"
    done
done

for c in "$S"/cpu/cpu*; do
    [ -d "$c" ] || continue
    i="${c##*/cpu}"
    case "$i" in '' | *[!0-9]*) continue ;; esac
    t="$c/topology"
    emit "cpu/$i/physical_package_id" "$t/physical_package_id"
    emit "cpu/$i/core_id" "$t/core_id"
    emit "cpu/$i/thread_siblings_list" "$t/thread_siblings_list"
    # The L3 cache: index3 on x86; otherwise whichever index reports level 3.
    l3=""
    if [ -f "$c/cache/index3/level" ]; then
        first "$c/cache/index3/level"
        [ "$v" = 3 ] && l3="$c/cache/index3"
    fi
    if [ -z "$l3" ]; then
        for x in "$c"/cache/index*; do
            [ -f "$x/level" ] || continue
            first "$x/level"
            if [ "$v" = 3 ]; then
                l3="$x"
                break
            fi
        done
    fi
    if [ -n "$l3" ]; then
        emit "cpu/$i/l3/id" "$l3/id"
        emit "cpu/$i/l3/shared_cpu_list" "$l3/shared_cpu_list"
    fi
done

printf 'end\tok\n'
