#!/usr/bin/env bash
# The one-time reformat of the whole tree with Prettier (issue 16), for the lead to run once on main after
# every branch in flight has merged: a whole-tree reformat in a branch would conflict with all of them.
#
#   bash scripts/format-tree.sh          format, check, and commit (three commits, see below)
#   bash scripts/format-tree.sh --dry    only say which files would change and by how many lines
#
# It refuses a tree with uncommitted changes. Then:
#   1. `npm run format` (prettier --write .) and the README's "until the reformat" note removed, then ESLint and the type check on the result (a reformat moves
#      code across lines; an `eslint-disable-next-line` must still sit above the line it is for), and commits;
#   2. records that commit in .git-blame-ignore-revs (`git config blame.ignoreRevsFile .git-blame-ignore-revs`
#      makes `git blame` look through it; GitHub reads the file by itself), and commits;
#   3. makes .ci/run run `npm run lint` (ESLint and the format check) instead of `npm run lint:eslint`, and commits.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--dry" ]]; then
  mapfile -t files < <(npx prettier --list-different . || true)
  if [[ ${#files[@]} -eq 0 ]]; then echo 'format-tree: nothing to change'; exit 0; fi
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp --parents "${files[@]}" "$tmp/"
  npx prettier --config .prettierrc.json --log-level warn --write "${files[@]/#/$tmp/}"
  total=0
  for f in "${files[@]}"; do
    n=$(diff "$f" "$tmp/$f" | grep -c '^[<>]' || true)
    total=$((total + n))
    printf '%6d  %s\n' "$n" "$f"
  done
  echo "format-tree: ${#files[@]} files would change; $total lines removed or added (diff's < and > lines)"
  exit 0
fi

if [[ -n "$(git status --porcelain)" ]]; then
  echo 'format-tree: the work tree has uncommitted changes; commit or stash them first' >&2
  exit 1
fi

npm run format
# The README's note that the tree is not formatted yet goes with it.
sed -i "/^Until the tree's one reformat/,/^\$/d" README.md
npm run lint:eslint
npm run typecheck
npm run format:check
if [[ -n "$(git status --porcelain)" ]]; then
  git add -A
  git commit -q -m 'Format the tree with Prettier (npm run format; scripts/format-tree.sh). Layout only.'
  rev=$(git rev-parse HEAD)
  {
    [[ -s .git-blame-ignore-revs ]] || echo '# Commits that only reformat code: git blame looks through them (git config blame.ignoreRevsFile .git-blame-ignore-revs).'
    echo "# Prettier over the whole tree (issue 16)"
    echo "$rev"
  } >> .git-blame-ignore-revs
  git add .git-blame-ignore-revs
  git commit -q -m 'git blame looks through the Prettier reformat (.git-blame-ignore-revs)'
  echo "format-tree: reformat committed as $rev"
else
  echo 'format-tree: the tree was already formatted'
fi

if grep -q 'npm run lint:eslint' .ci/run; then
  sed -i 's/npm run lint:eslint/npm run lint/' .ci/run
  sed -i 's/^# Lint: ESLint only until.*$/# Lint: ESLint and the Prettier format check./' .ci/run
  git add .ci/run
  git commit -q -m 'CI: npm run lint (ESLint and the format check) now that the tree is formatted'
  echo 'format-tree: .ci/run now runs npm run lint'
fi
