#!/bin/sh
# PostgreSQL's archive_command for a Cordon hub's database (docs/deploy.md, "Backup and restore"):
#
#   archive_mode = on
#   archive_command = '/usr/local/lib/cordon/archive-wal.sh "%p" "%f" /var/lib/postgresql/wal-archive'
#
# Copies one finished WAL segment (or history or backup file) into the archive folder under a temporary
# name, flushes it to disk, then renames it into place, so the archive never holds half a file under a
# real name. It never overwrites: a file already there with the same bytes is success (PostgreSQL asks
# again after a crash between the copy and its own note of it), one with other bytes is a failure that
# PostgreSQL retries and logs until someone looks (two servers archiving into one folder, or a restored
# copy archiving where the live server does). Needs nothing but coreutils (sync FILE flushes that file).
set -eu
src=$1
name=$2
archive=$3
if [ -e "$archive/$name" ]; then
    if cmp -s "$src" "$archive/$name"; then
        exit 0
    fi
    echo "archive-wal: $archive/$name exists and differs from $src: refusing to overwrite it" >&2
    exit 1
fi
tmp="$archive/.$name.tmp"
cp "$src" "$tmp"
sync "$tmp"
mv "$tmp" "$archive/$name"
sync "$archive"
