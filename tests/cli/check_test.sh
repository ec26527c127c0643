#!/usr/bin/env bash
# End-to-end tests of `portwall check`: exit status, the summary line on
# stdout and the diagnostics on stderr, for the example rule files, broken
# files, warnings, and a 10,000-rule file checked in under a second of CPU
# time. Needs no root.
#
# Usage: check_test.sh PORTWALL SOURCE_ROOT WORK_DIR
set -uo pipefail

portwall=$1
source_root=$2
work=$3
rm -rf "$work"
mkdir -p "$work"

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# Run `portwall check ARGS...`, storing the exit status, stdout and stderr.
run_check() {
  "$portwall" check "$@" >"$work/stdout" 2>"$work/stderr"
  status=$?
}

expect_status() {
  local expected=$1 case_name=$2
  if [ "$status" -ne "$expected" ]; then
    fail "$case_name: exit status $status, expected $expected"
    sed 's/^/  stderr: /' "$work/stderr" >&2
  fi
}

# expect_line FILE TEXT CASE: FILE must contain the line TEXT exactly.
expect_line() {
  local file=$1 text=$2 case_name=$3
  if ! grep -qxF -- "$text" "$work/$file"; then
    fail "$case_name: $file has no line '$text'"
    sed "s/^/  $file: /" "$work/$file" >&2
  fi
}

policy_drop=$'[policy]\ninput = "drop"\n'

# The examples in rules/ are valid and free of warnings.
for file in "$source_root"/rules/*.toml; do
  name=$(basename "$file")
  run_check "$file"
  expect_status 0 "example $name"
  summary_pattern="^$file: [0-9]+ rules?, policy (accept|drop), 0 errors, 0 warnings\$"
  if ! grep -qE "$summary_pattern" "$work/stdout"; then
    fail "example $name: unexpected summary: $(cat "$work/stdout")"
  fi
  if [ -s "$work/stderr" ]; then
    fail "example $name: diagnostics on stderr"
    sed 's/^/  stderr: /' "$work/stderr" >&2
  fi
done

# A file with several errors reports all of them, with positions, and a
# source line with a caret.
bad=$work/bad.toml
cat >"$bad" <<EOF
${policy_drop}[[rule]]
name = "web"
action = "accept"
dport = 70000
[[rule]]
name = "web"
action = "accept"
src = "198.18.0.1/15"
EOF
run_check "$bad"
expect_status 1 "several errors"
expect_line stdout "$bad: invalid, 3 errors, 0 warnings" "several errors"
expect_line stderr "$bad:6:9: error: port 70000 is out of range 0-65535" "several errors"
expect_line stderr "$bad:8:8: error: duplicate rule name 'web'" "several errors"
expect_line stderr "$bad:4:8: note: 'web' is first used here" "several errors"
host_bits="prefix '198.18.0.1/15' has host bits set, did you mean '198.18.0.0/15'?"
expect_line stderr "$bad:10:7: error: $host_bits" "several errors"
expect_line stderr "    dport = 70000" "several errors"
expect_line stderr "            ^" "several errors"

# A TOML syntax error is reported with its position.
syntax=$work/syntax.toml
printf '%s[[rule]]\naction = "accept" x\n' "$policy_drop" >"$syntax"
run_check "$syntax"
expect_status 1 "syntax error"
syntax_error="$syntax:4:19: error: invalid TOML, the file is not checked past this point:"
if ! grep -qF "$syntax_error" "$work/stderr"; then
  fail "syntax error: no positioned TOML error"
fi

# Warnings leave the exit status at 0, unless --strict.
shadowed=$work/shadowed.toml
cat >"$shadowed" <<EOF
${policy_drop}[[rule]]
name = "all-web"
action = "accept"
dport = [80, 443]
[[rule]]
name = "block-one"
action = "drop"
dport = 443
src = "2001:db8::66"
EOF
run_check "$shadowed"
expect_status 0 "shadowed rule"
expect_line stdout "$shadowed: 2 rules, policy drop, 0 errors, 1 warning" "shadowed rule"
covered="rule 'block-one' can never match because rule 'all-web' matches every packet it"
covered+=" matches, with the opposite action (accept instead of drop)"
expect_line stderr "$shadowed:7:1: warning: $covered" "shadowed rule"
expect_line stderr "$shadowed:3:1: note: rule 'all-web' is defined here" "shadowed rule"
run_check --strict "$shadowed"
expect_status 1 "shadowed rule with --strict"

# Several files: one summary line each; one bad file fails the run.
run_check "$source_root/rules/demo.toml" "$bad" "$work/missing.toml"
expect_status 1 "several files"
demo_summary="$source_root/rules/demo.toml: 4 rules, policy drop, 0 errors, 0 warnings"
expect_line stdout "$demo_summary" "several files"
expect_line stdout "$bad: invalid, 3 errors, 0 warnings" "several files"
expect_line stdout "$work/missing.toml: invalid, 1 error, 0 warnings" "several files"
missing_error="$work/missing.toml: error: cannot open the rule file: No such file or directory"
expect_line stderr "$missing_error" "several files"

# A directory is reported with the reason it cannot be read, not as a file
# without a [policy] table.
mkdir -p "$work/adir.toml"
run_check "$work/adir.toml"
expect_status 1 "directory"
expect_line stderr "$work/adir.toml: error: cannot read the rule file: Is a directory" "directory"
if grep -q "policy" "$work/stderr"; then
  fail "directory: reported as a rule file: $(cat "$work/stderr")"
fi

# An endless file fails at the 16 MiB limit within seconds, instead of
# filling memory.
timeout 20 "$portwall" check /dev/zero >"$work/stdout" 2>"$work/stderr"
status=$?
expect_status 1 "/dev/zero"
too_large="/dev/zero: error: the rule file is larger than the 16 MiB limit"
expect_line stderr "$too_large" "/dev/zero"

# The name "policy" is what expect files and reports call the policy verdict.
reserved=$work/reserved.toml
printf '%s[[rule]]\nname = "policy"\naction = "accept"\n' "$policy_drop" >"$reserved"
run_check "$reserved"
expect_status 1 "reserved name"
expect_line stderr \
  "$reserved:4:8: error: invalid rule name: name 'policy' is reserved for the policy verdict" \
  "reserved name"

# A src condition on an admin port is not in force when failing closed: the
# kernel accepts that port from every address before the queue.
admin=$work/admin.toml
cat >"$admin" <<EOF
${policy_drop}[daemon]
fail = "closed"
admin_ports = [22]
[[rule]]
name = "ssh-admins"
action = "accept"
proto = "tcp"
dport = 22
src = ["198.18.100.0/28", "2001:db8:100::/64"]
EOF
run_check "$admin"
expect_status 0 "admin port"
expect_line stdout "$admin: 1 rule, policy drop, 0 errors, 1 warning" "admin port"
bypass="rule 'ssh-admins' limits TCP port 22 by src, but 22 is in [daemon] admin_ports,"
bypass+=" which the kernel accepts from every address before any rule when failing closed"
expect_line stderr "$admin:6:1: warning: $bypass" "admin port"

# No file at all is a usage error.
run_check
expect_status 2 "no file"

# 10,000 rules: in every 1,000, rules 992-999 copy rule 991, so the check must
# report exactly 80 duplicates, and finish in under 1 s of CPU time.
large=$work/large.toml
python3 - "$large" <<'EOF'
import sys

with open(sys.argv[1], "w") as out:
    out.write('[policy]\ninput = "drop"\n')
    for i in range(10000):
        a, b = (i >> 8) & 0xFF, i & 0xFF
        source = i - i % 1000 + 991 if i % 1000 >= 992 else i
        sa, sb = (source >> 8) & 0xFF, source & 0xFF
        out.write('\n[[rule]]\n')
        out.write(f'name = "r{i}"\n')
        out.write('action = "accept"\n' if source % 2 else 'action = "drop"\n')
        out.write(f'dport = [{443 + source % 7}, "{2000 + source % 50}-{3000 + source % 50}"]\n')
        out.write(f'src = ["198.18.{sa}.{sb}", "2001:db8::{source:x}"]\n')
EOF
TIMEFORMAT='%U %S'
cpu=$( { time "$portwall" check "$large" >"$work/stdout" 2>"$work/stderr"; } 2>&1 )
status=$?
expect_status 0 "10,000 rules"
expect_line stdout "$large: 10000 rules, policy drop, 0 errors, 80 warnings" "10,000 rules"
read -r user_seconds system_seconds <<<"$cpu"
echo "10,000 rules: ${user_seconds}s user, ${system_seconds}s system CPU time"
if ! awk -v u="$user_seconds" -v s="$system_seconds" 'BEGIN { exit !(u + s < 1.0) }'; then
  fail "10,000 rules: check took ${user_seconds}s user + ${system_seconds}s system CPU time," \
    "limit 1 s"
fi

if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all portwall check tests passed"
