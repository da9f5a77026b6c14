#!/usr/bin/env bash
# The tagcache README's blog example, done from a shell on a tagcachefs mount
# with nothing but bash and coreutils (getfattr, from attr, only to show the
# entry's xattrs).
#
#   usage: examples/blog.sh MOUNTPOINT
#
# Caches the blog's home page as keys/blog-home with the tags blog-new and bio
# and a 7-day expiry, reads it back, shows it in keys/ and tags/bio/, then
# invalidates every page that shows the bio with `rmdir tags/bio`: the entry
# is gone from keys/ while its last content stays readable under stale/
# (serve stale while one process regenerates).
#
# Every step checks what it printed; the script exits non-zero at the first
# expectation that does not hold.
set -euo pipefail

MNT=${1:?usage: $0 MOUNTPOINT}
cd "$MNT"

fail() {
    echo "blog.sh: FAIL: $*" >&2
    exit 1
}
step() { printf '\n$ %s\n' "$*"; }

TTL=$((3600 * 24 * 7))
content='{"bio": {"name": "Huang junwen"}, "recent_blogs": ["tagcache", "tagcachefs"]}'

# 1. Generate the page and cache it: a write through put/ is a write of
#    keys/blog-home with the expiry and the tags set before any data, all
#    committed at once when the file is closed.
step "printf '%s\\n' '$content' > put/expire=$TTL/tags=blog-new,bio/blog-home"
printf '%s\n' "$content" >"put/expire=$TTL/tags=blog-new,bio/blog-home"
now=$(date +%s)

# 2. A hit is a plain read.
step "cat keys/blog-home"
cat keys/blog-home
[ "$(cat keys/blog-home)" = "$content" ] || fail "keys/blog-home does not hold the page"

# 3. The entry in keys/: size = content length, nlink = tags + 1, mtime = expiry.
step "ls -l keys/"
listing=$(ls -l keys/)
echo "$listing"
grep -q ' blog-home$' <<<"$listing" || fail "ls -l keys/ does not list blog-home"
size=$(stat -c %s keys/blog-home)
[ "$size" -eq $((${#content} + 1)) ] || fail "size $size, expected $((${#content} + 1))"
nlink=$(stat -c %h keys/blog-home)
[ "$nlink" -eq 3 ] || fail "nlink $nlink, expected 3 (two tags + 1)"
mode=$(stat -c %a keys/blog-home)
[ "$mode" = 644 ] || fail "mode $mode, expected 644"
expiry=$(stat -c %Y keys/blog-home)
{ [ "$expiry" -ge $((now + TTL - 5)) ] && [ "$expiry" -le $((now + TTL + 5)) ]; } ||
    fail "mtime $expiry is not the expiry (now $now + $TTL)"

# 4. The tags are directories; tags/bio/blog-home is the same inode.
step "ls tags/"
ls tags/
[ -d tags/bio ] && [ -d tags/blog-new ] || fail "tags/bio or tags/blog-new missing"
step "ls -l tags/bio/"
listing=$(ls -l tags/bio/)
echo "$listing"
grep -q ' blog-home$' <<<"$listing" || fail "ls -l tags/bio/ does not list blog-home"
[ "$(stat -c %i tags/bio/blog-home)" = "$(stat -c %i keys/blog-home)" ] ||
    fail "tags/bio/blog-home is not the same inode as keys/blog-home"
[ "$(cat tags/blog-new/blog-home)" = "$content" ] || fail "tags/blog-new/blog-home differs"

# 5. The cache parameters as xattrs: the tags, and the seconds left.
step "getfattr -d keys/blog-home"
getfattr -d keys/blog-home
tags=$(getfattr --only-values -n user.tags keys/blog-home | tr ',' '\n' | sort | paste -sd,)
[ "$tags" = "bio,blog-new" ] || fail "user.tags is '$tags', expected bio and blog-new"
left=$(getfattr --only-values -n user.expire keys/blog-home)
{ [ "$left" -gt $((TTL - 60)) ] && [ "$left" -le "$TTL" ]; } ||
    fail "user.expire is '$left' seconds, expected about $TTL"

# 6. The bio changed: invalidate every page that shows it.
step "rmdir tags/bio"
rmdir tags/bio

# 7. Gone: cat fails with ENOENT, keys/ and the other tag no longer list it.
step "cat keys/blog-home"
if err=$(cat keys/blog-home 2>&1); then
    fail "keys/blog-home is still readable after rmdir tags/bio: $err"
fi
echo "$err"
grep -q 'No such file or directory' <<<"$err" || fail "expected ENOENT, got: $err"
[ ! -e tags/bio ] || fail "tags/bio still exists"
step "ls -l keys/"
listing=$(ls -l keys/)
echo "$listing"
! grep -q ' blog-home$' <<<"$listing" || fail "ls keys/ still lists blog-home"
! grep -qx 'blog-home' <<<"$(ls tags/blog-new/)" || fail "tags/blog-new/ still lists blog-home"

# 8. ...but its last content is still there to serve while it is regenerated.
step "cat stale/blog-home"
cat stale/blog-home
[ "$(cat stale/blog-home)" = "$content" ] || fail "stale/blog-home does not hold the old page"

printf '\nblog.sh: all expectations held\n'
