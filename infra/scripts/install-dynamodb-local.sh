#!/usr/bin/env bash
# Installs DynamoDB Local 1.25.1 into $1 (default .tools/dynamodb-local).
#
# The official download site is not reachable from every build machine, but
# the npm package amplify-dynamodb-simulator@2.9.30 ships the same emulator
# under package/emulator/. Only that tarball is fetched (npm pack, no
# dependency tree), its sha512 integrity is checked, and only the emulator is
# kept.
set -euo pipefail

dest=${1:-.tools/dynamodb-local}
package=amplify-dynamodb-simulator@2.9.30
integrity=sha512-xTeeRLvzEfqyd5lh3bH4c0kHvSHHmmhD5ZDsHFKAQ5g2Zl6JqlFdutaQhCLHzxEp6Ry1o7TB6niIoXuQAnSewQ==

if [ -f "$dest/DynamoDBLocal.jar" ]; then
  exit 0
fi
command -v java >/dev/null || { echo "install-dynamodb-local: java (17+) is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "install-dynamodb-local: npm is required to fetch the emulator" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "Fetching DynamoDB Local ($package) ..."
(cd "$work" && npm pack "$package" --silent >/dev/null)
tarball=$(ls "$work"/*.tgz)
actual="sha512-$(node -e 'const c=require("crypto"),f=require("fs");process.stdout.write(c.createHash("sha512").update(f.readFileSync(process.argv[1])).digest("base64"))' "$tarball")"
if [ "$actual" != "$integrity" ]; then
  echo "install-dynamodb-local: integrity mismatch for $package" >&2
  echo "  expected $integrity" >&2
  echo "  got      $actual" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work" package/emulator
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$work/package/emulator" "$dest"
echo "DynamoDB Local installed in $dest"
