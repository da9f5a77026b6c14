#!/usr/bin/env bash
# A get-or-compute helper for tagcachefs in bash, with nothing but bash and
# coreutils: the same behaviour as the Python and Node packages
# (clients/python, clients/node).
#
#   source examples/tagcache.sh
#   tc_get_or_compute MNT KEY TAGS EXPIRE CMD [ARG...]
#
# prints the value of KEY on the tagcachefs mount MNT, computing it with CMD
# on a miss and caching it with TAGS (comma-separated, "" for none) and
# EXPIRE (seconds to live, 0 = never, "" = the mount's --default-expire).
# It sets TC_HOW to where the value came from: hit, computed, stale, waited
# (another process computed it while this one polled) or fallback (the wait
# ran out: computed here without the lock). Returns CMD's status if CMD
# fails (nothing is cached then). TC_WAIT (default 30) bounds, in seconds,
# the wait for another process's compute; TC_READ_MNT, if set, is the
# daemon's read-only fast view, where hits are read.
#
#   * hit: cat keys/KEY.
#   * miss: take KEY's single-flight lock by opening
#     put/expire=EXPIRE/tags=TAGS/KEY with O_CREAT|O_EXCL: `set -o
#     noclobber` makes `>` do exactly that (bash stats the name, which
#     under put/ never exists, then opens with O_WRONLY|O_CREAT|O_EXCL), and
#     `exec {fd}>...` keeps the descriptor in this shell. A write through
#     put/ is a write of keys/KEY with the tags and expiry already on the
#     descriptor. Then compute, write, close: see _tc_store.
#   * EEXIST: serve stale/KEY if present; else poll keys/KEY with a back-off
#     from 5 ms doubling to 250 ms for at most TC_WAIT seconds, retrying the
#     lock each round (a holder that gave up is replaced at once); past that,
#     compute here and store with a plain O_CREAT|O_TRUNC `>|`.
#
# Run as a script:
#   examples/tagcache.sh MOUNTPOINT                 a small demo that checks itself
#   examples/tagcache.sh --race MOUNTPOINT KEY RECORD
#       one contender of a single-flight test (the packages' protocol):
#       waits for a line on stdin, then gets KEY with a compute step that
#       sleeps 1 s and appends a line to RECORD, and prints "<how> <value>".

# Writing from a shell, and where the commits happen.
#
# The mount commits a writing descriptor at every close() that follows a
# change (a write, an xattr, an mtime); only a close by another process
# than the one that wrote (or, before any write, opened) is ignored. A
# shell closes descriptors all the time: `printf >&$fd` dups the descriptor
# onto 1 and closes the dup after the builtin; every child it forks inherits
# the descriptor (bash does not mark {fd} close-on-exec) and closes it when
# it exits, or at once with `{fd}>&-`. So, in this order:
#   1. CMD writes to a file of its own, not to the descriptor: a CMD made of
#      several writers (a function with two echos, a pipeline) would commit
#      each part at each of their closes, a half-written version readers
#      could see, and a CMD that fails half-way would have committed what it
#      wrote. CMD runs with `{fd}>&-`: it does not get the lock's descriptor
#      (a daemon it leaves behind would hold the lock).
#   2. The value goes in with one `cat`. Its first close after writing, the
#      close of stdout that coreutils makes and checks at exit, commits
#      content, tags and expiry together, in one version, and reports the
#      commit's error (ENOSPC, EIO, ESTALE) as cat's exit status.
#   3. The shell closes its descriptor: nothing new, nothing committed.
# An empty value writes nothing, so nothing would commit: `touch -c` the
# descriptor's node through /proc/PID/fd/N instead (the mount takes
# "mtime = now" on a writer as "expires its TTL from now", a change), and
# the shell's own close commits. Without -c, touch would open the node for
# writing: a second writer, committing an untagged empty version.

_TC_WAIT_DEFAULT=30

# _tc_us SECONDS: SECONDS (may have a fraction) in microseconds.
_tc_us() {
    local s=$1 i f=
    i=${s%%.*}
    [[ $s == *.* ]] && f=${s#*.}
    f=${f}000000
    echo $((10#${i:-0} * 1000000 + 10#${f:0:6}))
}

# _tc_now: microseconds since the epoch, without forking.
_tc_now() {
    local t=${EPOCHREALTIME//[!0-9]/}
    echo $((10#$t))
}

# _tc_cat FILE: prints FILE's content (return 0); 1 if it does not exist;
# 2, with the error on stderr, if it cannot be read.
_tc_cat() {
    local err
    { err=$(LC_ALL=C cat -- "$1" 2>&1 >&3 3>&-); } 3>&1 && return 0
    [[ $err == *": No such file or directory" ]] && return 1
    printf '%s\n' "$err" >&2
    return 2
}

# _tc_check KEY TAGS EXPIRE: refuses, before anything is locked, what the
# mount would refuse (EINVAL, ENAMETOOLONG) and what put/ cannot carry.
_tc_check() {
    local key=$1 tags=$2 expire=$3 t
    if [[ -n $expire ]] && ! [[ $expire =~ ^[0-9]{1,10}$ ]] || ((10#${expire:-0} > 1 << 32)); then
        echo "tc_get_or_compute: EXPIRE must be seconds, 0 to 2^32: '$expire'" >&2
        return 2
    fi
    if [[ -z $key || $key == */* || $key == . || $key == .. || $key == expire=* || $key == tags=* ]] ||
        (($(LC_ALL=C; echo ${#key}) > 125)); then
        echo "tc_get_or_compute: not a key put/ can write: '$key'" >&2
        return 2
    fi
    if (($(LC_ALL=C; echo $((${#tags} + 5))) > 255)); then
        echo "tc_get_or_compute: TAGS longer than 250 bytes" >&2
        return 2
    fi
    local IFS=,
    for t in $tags; do
        t=${t#"${t%%[![:space:]]*}"} # blanks around names are ignored
        t=${t%"${t##*[![:space:]]}"}
        [[ -z $t ]] && continue
        if [[ $t == */* || $t == *[[:space:]]* || $t == . || $t == .. ]] ||
            (($(LC_ALL=C; echo ${#t}) > 125)); then
            echo "tc_get_or_compute: not a tag name: '$t'" >&2
            return 2
        fi
    done
}

# _tc_store FD VALUE_FILE: writes VALUE_FILE into the writing descriptor FD
# of this shell (the commit, at cat's close) and closes FD. Returns the
# commit's status.
_tc_store() {
    local fd=$1 value=$2 rc=0 pid=$BASHPID
    if [[ -s $value ]]; then
        cat -- "$value" >&"$fd" || rc=$?
    else
        # Nothing to write: a change the shell's close below commits.
        touch -c -- "/proc/$pid/fd/$fd" {fd}>&- || rc=$?
    fi
    exec {fd}>&-
    return "$rc"
}

# _tc_lock PATH: opens PATH with O_CREAT|O_EXCL into TC_FD (return 0); 1 on
# EEXIST (someone holds the lock, or the entry is live); 2, with the error on
# stderr, on any other error. SCRATCH holds the error message.
_tc_lock() {
    local path=$1 scratch=$2 fd
    # noclobber is on (tc_get_or_compute): `>` is O_CREAT|O_EXCL, and the
    # error file is written with `>|`.
    if { LC_ALL=C exec {fd}>"$path"; } 2>|"$scratch/err"; then
        TC_FD=$fd
        return 0
    fi
    [[ $(<"$scratch/err") == *": cannot overwrite existing file" ]] && return 1
    cat -- "$scratch/err" >&2
    return 2
}

tc_get_or_compute() {
    if (($# < 5)); then
        echo "usage: tc_get_or_compute MNT KEY TAGS EXPIRE CMD [ARG...]" >&2
        return 2
    fi
    local scratch rc=0
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/tagcache.XXXXXX") || return
    _tc_get_or_compute "$scratch" "$@" || rc=$?
    rm -rf -- "$scratch"
    return "$rc"
}

_tc_get_or_compute() {
    local -
    set +e +o pipefail -o noclobber
    local scratch=$1 mnt=$2 key=$3 tags=$4 expire=$5
    shift 5
    _tc_check "$key" "$tags" "$expire" || return
    local hit_path=${TC_READ_MNT:-$mnt}/keys/$key
    local put=$mnt/put/${expire:+expire=$expire/}tags=$tags/$key
    local value=$scratch/value rc fd deadline= now delay=5000 left
    TC_HOW=
    while :; do
        _tc_cat "$hit_path"
        rc=$?
        if ((rc == 0)); then
            TC_HOW=${deadline:+waited}
            TC_HOW=${TC_HOW:-hit}
            return 0
        fi
        ((rc == 1)) || return "$rc"
        _tc_lock "$put" "$scratch"
        rc=$?
        if ((rc == 0)); then
            fd=$TC_FD
            # CMD does not get the lock's descriptor.
            "$@" >|"$value" {fd}>&-
            rc=$?
            if ((rc != 0)); then
                exec {fd}>&- # nothing written: nothing committed, lock released
                return "$rc"
            fi
            _tc_store "$fd" "$value" || return
            TC_HOW=computed
            cat -- "$value"
            return
        fi
        ((rc == 1)) || return "$rc"
        # EEXIST: someone holds the single-flight lock, or committed just now.
        if [[ -z $deadline ]]; then
            _tc_cat "$hit_path"
            rc=$?
            if ((rc == 0)); then
                TC_HOW=hit
                return 0
            fi
            ((rc == 1)) || return "$rc"
            _tc_cat "$mnt/stale/$key"
            rc=$?
            if ((rc == 0)); then
                TC_HOW=stale
                return 0
            fi
            ((rc == 1)) || return "$rc"
            deadline=$(($(_tc_now) + $(_tc_us "${TC_WAIT:-$_TC_WAIT_DEFAULT}")))
        fi
        now=$(_tc_now)
        ((now < deadline)) || break
        left=$((deadline - now))
        ((left < delay)) || left=$delay
        sleep "$((left / 1000000)).$(printf '%06d' $((left % 1000000)))"
        ((delay = delay * 2 > 250000 ? 250000 : delay * 2))
    done
    "$@" >|"$value" || return
    # Past the wait: a plain O_CREAT|O_TRUNC open, which the lock does not
    # bind (the last commit wins).
    exec {fd}>|"$put" || return
    _tc_store "$fd" "$value" || return
    TC_HOW=fallback
    cat -- "$value"
}

# tc_invalidate_tag MNT TAG: rmdir tags/TAG (every entry carrying it).
tc_invalidate_tag() {
    rmdir -- "$1/tags/$2"
}

# tc_invalidate_key MNT KEY: one entry (its content stays under stale/).
tc_invalidate_key() {
    rm -- "$1/keys/$2"
}

_tc_race() {
    local mnt=$1 key=$2 record=$3 out rc=0
    read -r _ || true # released together with the others
    _tc_race_compute() {
        sleep 1
        echo "$BASHPID" >>"$record"
        printf 'computed by %s at %s' "$BASHPID" "$EPOCHREALTIME"
    }
    out=$(mktemp) || return
    tc_get_or_compute "$mnt" "$key" "" 0 _tc_race_compute >"$out" || rc=$?
    ((rc == 0)) && printf '%s %s\n' "$TC_HOW" "$(<"$out")"
    rm -f -- "$out"
    return "$rc"
}

# The demo: the helper's paths, each checked.
_tc_demo() {
    set -euo pipefail
    local mnt=$1 runs out v ttl=600 now holder
    fail() {
        echo "tagcache.sh: FAIL: $*" >&2
        exit 1
    }
    out=$(mktemp -d)
    trap "rm -rf -- $(printf %q "$out")" EXIT
    runs=$out/runs
    render() { # a page, in two writes (a shell function: no partial commit)
        echo run >>"$runs"
        printf '<h1>home</h1>\n'
        printf '<p>run %s</p>\n\n' "$(wc -l <"$runs")"
    }

    tc_get_or_compute "$mnt" home "blog-new,bio" $ttl render >"$out/1"
    now=$(date +%s)
    [[ $TC_HOW == computed ]] || fail "first call: $TC_HOW"
    printf '<h1>home</h1>\n<p>run 1</p>\n\n' | cmp -s - "$out/1" || fail "value: $(<"$out/1")"
    cmp -s "$mnt/keys/home" "$out/1" || fail "keys/home differs from the value (trailing newlines kept?)"
    echo "computed: keys/home, $(stat -c %s "$mnt/keys/home") bytes"

    tc_get_or_compute "$mnt" home "blog-new,bio" $ttl render >"$out/2"
    [[ $TC_HOW == hit ]] || fail "second call: $TC_HOW"
    cmp -s "$out/1" "$out/2" || fail "the hit differs"
    [[ $(wc -l <"$runs") == 1 ]] || fail "computed twice"
    echo "hit"

    [[ $(stat -c %h "$mnt/keys/home") == 3 ]] || fail "nlink $(stat -c %h "$mnt/keys/home"), expected 3"
    [[ $(ls "$mnt/tags/bio") == home && $(ls "$mnt/tags/blog-new") == home ]] || fail "tags"
    v=$(stat -c %Y "$mnt/keys/home")
    ((v >= now + ttl - 5 && v <= now + ttl + 5)) || fail "mtime $v, expected about $((now + ttl))"
    echo "tagged blog-new,bio, expires in $((v - now)) s"

    rmdir "$mnt/tags/bio"
    # (An open, not a stat: the kernel may keep the name for a few ms more.)
    ! cat "$mnt/keys/home" 2>/dev/null || fail "keys/home survived rmdir tags/bio"

    # Served stale while another process holds the lock.
    (
        set -o noclobber
        exec {holder}>"$mnt/put/home"
        TC_WAIT=0.1 tc_get_or_compute "$mnt" home "blog-new,bio" $ttl render >"$out/3" {holder}>&-
        [[ $TC_HOW == stale ]] || fail "with a holder: $TC_HOW"
        cmp -s "$out/1" "$out/3" || fail "stale value differs"
    )
    [[ $(wc -l <"$runs") == 1 ]] || fail "computed while stale was there"
    echo "stale while another process holds the lock"

    # The holder gave up (nothing committed): the next call computes, and
    # the first version anyone sees is already tagged: no window in which an
    # rmdir could miss it.
    tc_get_or_compute "$mnt" home "blog-new,bio" $ttl bash -c 'sleep 0.5; echo regenerated' >"$out/4" &
    local first
    until exec {first}<"$mnt/keys/home"; do :; done 2>/dev/null
    v=$(stat -L -c %h "/proc/$BASHPID/fd/$first") # the version opened
    exec {first}<&-
    [[ $v == 3 ]] || fail "the first visible version has nlink $v, not 3: not tagged"
    wait $!
    [[ $(<"$mnt/keys/home") == regenerated ]] || fail "regenerated: $(<"$mnt/keys/home")"
    echo "regenerated; tagged from its first visible moment"

    # A failing compute caches nothing and leaves the key free.
    if tc_get_or_compute "$mnt" broken "" 0 bash -c 'echo partial; exit 3' >/dev/null; then
        fail "a failing CMD succeeded"
    fi
    ! cat "$mnt/keys/broken" 2>/dev/null || fail "a failing CMD committed keys/broken"
    ! cat "$mnt/stale/broken" 2>/dev/null || fail "a failing CMD committed stale/broken"
    [[ $(tc_get_or_compute "$mnt" broken "" 0 echo ok) == ok ]] || fail "broken key not free"
    [[ $(stat -c %Y "$mnt/keys/broken") == $((1 << 32)) ]] || fail "expire 0 is not never"
    echo "a failing compute caches nothing"

    # An empty value is cached too, with its tags and expiry.
    tc_get_or_compute "$mnt" empty "blog-new" $ttl true >"$out/6"
    [[ ! -s $out/6 && $TC_HOW == computed ]] || fail "empty: $TC_HOW"
    tc_get_or_compute "$mnt" empty "blog-new" $ttl true >"$out/6"
    [[ ! -s $out/6 && $TC_HOW == hit ]] || fail "empty, again: $TC_HOW"
    v=$(stat -c %Y "$mnt/keys/empty")
    ((v >= now + ttl - 60 && v <= $(date +%s) + ttl + 5)) || fail "empty: mtime $v"
    [[ $(ls "$mnt/tags/blog-new") == *empty* ]] || fail "keys/empty untagged"
    echo "an empty value is cached"

    if tc_get_or_compute "$mnt" bad "ok" -1 echo x 2>/dev/null; then
        fail "EXPIRE -1 accepted"
    fi
    ! cat "$mnt/keys/bad" 2>/dev/null || fail "EXPIRE -1 cached something"

    # A holder that never finishes: past TC_WAIT, compute without the lock.
    (
        set -o noclobber
        exec {holder}>"$mnt/put/stuck"
        TC_WAIT=0.3 tc_get_or_compute "$mnt" stuck "blog-new" "" printf 'done anyway' >"$out/5" {holder}>&-
        [[ $TC_HOW == fallback && $(<"$out/5") == "done anyway" ]] || fail "stuck: $TC_HOW $(<"$out/5")"
    )
    [[ $(<"$mnt/keys/stuck") == "done anyway" ]] || fail "keys/stuck"
    [[ $(ls "$mnt/tags/blog-new") == *stuck* ]] || fail "keys/stuck untagged"
    echo "fallback past the wait"

    printf '\ntagcache.sh: all expectations held\n'
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    if (($# == 4)) && [[ $1 == --race ]]; then
        _tc_race "$2" "$3" "$4"
    elif (($# == 1)); then
        _tc_demo "$1"
    else
        echo "usage: $0 MOUNTPOINT | $0 --race MOUNTPOINT KEY RECORD" >&2
        exit 2
    fi
fi
