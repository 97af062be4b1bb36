#!/usr/bin/env bash
# The x86 guest that bench/browser-emulator.ts boots in v86 (the in-browser PC emulator), built
# from Debian's i386 packages so that it runs the same busybox as our riscv64 guest:
#
#   guest/v86.sh            → guest/work/v86/{bzImage,initrd.gz,bios.bin,vgabios.bin,PROVENANCE.json}
#   guest/v86.sh small      → guest/work/v86/bzImage-small: an i386 kernel from the host's
#                             linux-source-6.1 (the source of our riscv64 kernel) with
#                             guest/v86-kernel.config, our kernel's choices carried over to a PC,
#                             so that boot times compare (~3 min on 2 cores; JOBS=N: make -jN)
#
# Never committed (guest/work/ is ignored). Packages come from the archive the host's apt already
# uses, through a private apt state under guest/work/v86-apt (the host's apt state is not
# touched); the .debs are kept in guest/cache/ and reused.
#
#   kernel    Debian's stock 32-bit kernel (linux-image-686 → linux-image-VER-686, non-PAE) from
#             V86_KERNEL_SUITE (default bookworm: later suites have no i386 kernel)
#   BIOS      Debian's seabios (bios.bin, vgabios-stdvga.bin) from V86_KERNEL_SUITE
#   userland  busybox-static:i386 from V86_USER_SUITE (default: the suite of the riscv64 guest's
#             busybox in guest/images/PROVENANCE.json), the same version as that busybox when the
#             suite has it; otherwise its current version, with a warning
#
# Needs apt-get, dpkg-deb, cpio, gzip, sha256sum and the Debian archive keyring (APT_TRUSTED=1
# skips the signature check instead). The applet links come from running the i386 busybox (on an
# x86 host directly, else through qemu-i386-static); when neither works, /init creates them at boot.
set -Eeuo pipefail
trap 'echo "[v86-guest] error: line $LINENO: $BASH_COMMAND failed" >&2' ERR

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=$GUEST_DIR/work/v86
APT_DIR=$GUEST_DIR/work/v86-apt
CACHE=$GUEST_DIR/cache
LOCK=$GUEST_DIR/images/PROVENANCE.json
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
KERNEL_SUITE=${V86_KERNEL_SUITE:-bookworm}

log() { printf '\033[1m[v86-guest]\033[0m %s\n' "$*" >&2; }
die() {
  printf '[v86-guest] error: %s\n' "$*" >&2
  exit 1
}

for tool in apt-get apt-cache dpkg-deb cpio gzip sha256sum; do
  command -v "$tool" >/dev/null || die "needs $tool (a Debian-like host)"
done
[[ ${APT_TRUSTED:-0} == 1 || -r $KEYRING ]] ||
  die "needs $KEYRING (package debian-archive-keyring), or APT_TRUSTED=1"

# The riscv64 guest's busybox-static: "version suite" from guest/images/PROVENANCE.json.
riscv_busybox() {
  [[ -f $LOCK ]] || return 0
  grep -F '"name": "busybox-static",' "$LOCK" |
    sed -E 's/.*"version": "([^"]*)".*"suite": "([^"]*)".*/\1 \2/' || true
}
read -r RV_BUSYBOX_VERSION RV_BUSYBOX_SUITE <<<"$(riscv_busybox)" || true
USER_SUITE=${V86_USER_SUITE:-${RV_BUSYBOX_SUITE:-$KERNEL_SUITE}}

# host_archive_uri, apt_field, apt_private: guest/apt-archive.sh
# shellcheck source=apt-archive.sh
source "$GUEST_DIR/apt-archive.sh"

# apt_opts SUITE → APT_OPTS for a private i386 state of that suite (index downloaded once per run)
apt_opts() {
  apt_private i386 "$1" "$APT_DIR/$1" || die "apt update of $1/i386 failed: $APT_ERROR"
}

# fetch SUITE PACKAGE[=VERSION] DIR → the package's files extracted into DIR; the .deb is kept in
# guest/cache/ (checked against the index's sha256) and recorded in $OUT/packages.tsv
fetch() {
  local suite=$1 spec=$2 dir=$3 pkg ver arch sum file
  apt_opts "$suite"
  pkg=${spec%%=*}
  ver=$(apt_field "$spec" Version)
  [[ -n $ver ]] || die "$spec not found in $suite/i386"
  arch=$(apt_field "$pkg=$ver" Architecture)
  sum=$(apt_field "$pkg=$ver" SHA256)
  file=$CACHE/${pkg}_${ver#*:}_${arch}.deb
  mkdir -p "$CACHE"
  if ! echo "$sum  $file" | sha256sum -c --quiet - >/dev/null 2>&1; then
    log "downloading $pkg $ver ($arch, $suite)"
    rm -rf "$APT_DIR/download"
    mkdir -p "$APT_DIR/download"
    (cd "$APT_DIR/download" && apt-get "${APT_OPTS[@]}" -qq download "$pkg=$ver") >&2
    mv "$APT_DIR/download/"*.deb "$file"
    echo "$sum  $file" | sha256sum -c --quiet - || die "checksum mismatch for $file"
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$pkg" "$ver" "$arch" "$suite" "$sum" >>"$OUT/packages.tsv"
  rm -rf "$dir"
  mkdir -p "$dir"
  dpkg-deb -x "$file" "$dir"
}

write_rootfs_files() { # DIR: init's configuration; the prompt is "v86:~# "
  local r=$1
  mkdir -p "$r/etc/init.d"
  cat >"$r/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
::respawn:-/bin/cttyhack /bin/sh -l
EOF
  cat >"$r/etc/init.d/rcS" <<'EOF'
#!/bin/sh
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=1777 tmpfs /tmp
[ -e /usr/bin/md5sum ] || /bin/busybox --install -s
hostname v86
EOF
  chmod 0755 "$r/etc/init.d/rcS"
  cat >"$r/etc/profile" <<'EOF'
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
export HOME=/root
export PS1='\h:\w# '
cd "$HOME"
EOF
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$r/etc/passwd"
  printf 'root:x:0:\n' >"$r/etc/group"
}

busybox_applets() { # busybox binary → "dir/applet" lines, or nothing when it cannot run here
  local list
  list=$("$1" --list-full 2>/dev/null || qemu-i386-static "$1" --list-full 2>/dev/null || true)
  tr -s ' \t' '\n\n' <<<"$list" | sed 's#^/##' | grep -v -e '^$' -e '^bin/busybox$' | LC_ALL=C sort -u
}

build_initrd() { # busybox package dir → $OUT/initrd.gz
  local x=$1 r=$OUT/rootfs bb d p n=0
  rm -rf "$r"
  for d in bin sbin usr/bin usr/sbin etc proc sys dev tmp root; do mkdir -p "$r/$d"; done
  for bb in "$x/usr/bin/busybox" "$x/bin/busybox" ''; do [[ -f $bb ]] && break; done
  [[ -n $bb ]] || die 'no busybox binary in busybox-static'
  install -m 0755 "$bb" "$r/bin/busybox"
  write_rootfs_files "$r"
  while IFS= read -r p; do
    [[ -e $r/$p || -L $r/$p ]] && continue
    mkdir -p "$r/$(dirname "$p")"
    ln -s /bin/busybox "$r/$p"
    n=$((n + 1))
  done < <(busybox_applets "$r/bin/busybox")
  ((n > 0)) || log 'cannot run the i386 busybox here: applet links are made at boot'
  ln -s /sbin/init "$r/init"
  [[ -L $r/sbin/init ]] || ln -s /bin/busybox "$r/sbin/init"
  # The kernel opens /dev/console for init before rcS mounts devtmpfs; creating the node needs root.
  if [[ $(id -u) == 0 ]]; then
    mknod -m 0600 "$r/dev/console" c 5 1
    mknod -m 0666 "$r/dev/null" c 1 3
  fi
  find "$r" -exec touch -h -d "@${SOURCE_DATE_EPOCH:-0}" {} +
  (cd "$r" && find . -mindepth 1 | LC_ALL=C sort |
    cpio -o -H newc --owner 0:0 --reproducible --quiet) | gzip -n -9 >"$OUT/initrd.gz"
  rm -rf "$r"
  log "initrd: $(stat -c %s "$OUT/initrd.gz") bytes, $n applet links"
}

write_provenance() {
  local f first=1 pkg ver arch suite sum
  {
    printf '{\n  "generator": "guest/v86.sh",\n  "packages": [\n'
    while IFS=$'\t' read -r pkg ver arch suite sum; do
      ((first)) || printf ',\n'
      first=0
      printf '    { "name": "%s", "version": "%s", "architecture": "%s", "suite": "%s", "sha256": "%s" }' \
        "$pkg" "$ver" "$arch" "$suite" "$sum"
    done <"$OUT/packages.tsv"
    printf '\n  ],\n  "outputs": {\n'
    first=1
    for f in bzImage initrd.gz bios.bin vgabios.bin bzImage-small; do
      [[ -f $OUT/$f ]] || continue
      ((first)) || printf ',\n'
      first=0
      printf '    "%s": { "bytes": %s, "sha256": "%s" }' "$f" "$(stat -c %s "$OUT/$f")" \
        "$(sha256sum "$OUT/$f" | cut -d' ' -f1)"
    done
    printf '\n  }\n}\n'
  } >"$OUT/PROVENANCE.json"
}

# check_kernel_config FRAGMENT DOTCONFIG: every line of the fragment holds in the final .config
check_kernel_config() {
  local line sym bad=0
  while IFS= read -r line; do
    if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
      grep -qxF "$line" "$2" || {
        log "v86-kernel.config: wanted '$line', got '$(grep -E "^(# )?${BASH_REMATCH[1]}[= ]" "$2" || echo unset)'"
        bad=1
      }
    elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
      sym=${BASH_REMATCH[1]}
      grep -qE "^$sym=" "$2" && { log "v86-kernel.config: wanted $sym off"; bad=1; }
    fi
  done <"$1"
  ((bad == 0)) || die 'kernel config does not match guest/v86-kernel.config (see above)'
}

# The small kernel: tinyconfig + guest/v86-kernel.config, built out of tree from the source tree
# guest/build.sh unpacks (guest/work/linux-6.1, same stamp: one copy serves both).
build_small_kernel() {
  local tar=/usr/src/linux-source-6.1.tar.xz src=$GUEST_DIR/work/linux-6.1 kout=$GUEST_DIR/work/v86-linux-build
  local frag=$GUEST_DIR/v86-kernel.config stamp tool epoch
  [[ -r $tar ]] || die "needs $tar (Debian package linux-source-6.1)"
  for tool in make gcc flex bison bc; do
    command -v "$tool" >/dev/null || die "needs $tool to build the kernel"
  done
  stamp="$(dpkg-query -W -f='${Version}' linux-source-6.1) $(stat -c %s "$tar")"
  if [[ ! -f $src/.wasmvisor-stamp || $(cat "$src/.wasmvisor-stamp") != "$stamp" ]]; then
    log "small kernel: unpacking $tar"
    rm -rf "$src" "$GUEST_DIR/work/linux-build" "$GUEST_DIR/work/linux-source-6.1"
    tar -C "$GUEST_DIR/work" -xf "$tar"
    mv "$GUEST_DIR/work/linux-source-6.1" "$src"
    echo "$stamp" >"$src/.wasmvisor-stamp"
  fi
  epoch=${SOURCE_DATE_EPOCH:-$(dpkg-parsechangelog -l /usr/share/doc/linux-source-6.1/changelog.Debian.gz -S Timestamp 2>/dev/null || echo 0)}
  kmake() {
    make -C "$src" O="$kout" ARCH=i386 KBUILD_BUILD_USER=wasmvisor KBUILD_BUILD_HOST=guest-build \
      KBUILD_BUILD_VERSION=1 KBUILD_BUILD_TIMESTAMP="$(LC_ALL=C date -u -d "@$epoch")" "$@"
  }
  mkdir -p "$kout" "$OUT"
  log 'small kernel: i386 tinyconfig + guest/v86-kernel.config'
  kmake -s tinyconfig
  (cd "$kout" && ARCH=i386 "$src/scripts/kconfig/merge_config.sh" -m -O "$kout" "$kout/.config" "$frag" \
    >"$kout/merge_config.log")
  kmake -s olddefconfig
  check_kernel_config "$frag" "$kout/.config"
  log "small kernel: make -j${JOBS:-2} bzImage (log: guest/work/v86-linux-build/build.log)"
  if ! kmake -j"${JOBS:-2}" bzImage >"$kout/build.log" 2>&1; then
    tail -40 "$kout/build.log" >&2
    die 'kernel build failed'
  fi
  install -m 0644 "$kout/arch/x86/boot/bzImage" "$OUT/bzImage-small"
  log "small kernel: $OUT/bzImage-small, $(stat -c %s "$OUT/bzImage-small") bytes"
}

main() {
  case ${1:-} in
    -h | --help)
      sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      return
      ;;
    small)
      build_small_kernel
      [[ -f $OUT/packages.tsv && -f $OUT/bzImage ]] && write_provenance
      return
      ;;
    '') ;;
    *) die "unknown target '$1' (nothing, or small)" ;;
  esac
  mkdir -p "$OUT"
  : >"$OUT/packages.tsv"
  local kernel_pkg bb_spec=busybox-static img
  # linux-image-686 is a metapackage → the versioned linux-image-VER-686
  apt_opts "$KERNEL_SUITE"
  kernel_pkg=$(apt_field linux-image-686 Depends | tr ',' '\n' | grep -o 'linux-image-[^ ]*-686' | head -1 || true)
  [[ -n $kernel_pkg ]] || die "cannot resolve linux-image-686 in $KERNEL_SUITE/i386"
  fetch "$KERNEL_SUITE" "$kernel_pkg" "$APT_DIR/pkg/kernel"
  img=$(find "$APT_DIR/pkg/kernel/boot" -name 'vmlinuz-*' -type f | head -1)
  [[ -n $img ]] || die "no /boot/vmlinuz in $kernel_pkg"
  install -m 0644 "$img" "$OUT/bzImage"

  fetch "$KERNEL_SUITE" seabios "$APT_DIR/pkg/seabios"
  install -m 0644 "$APT_DIR/pkg/seabios/usr/share/seabios/bios.bin" "$OUT/bios.bin"
  install -m 0644 "$APT_DIR/pkg/seabios/usr/share/seabios/vgabios-stdvga.bin" "$OUT/vgabios.bin"

  apt_opts "$USER_SUITE"
  if [[ -n ${RV_BUSYBOX_VERSION:-} ]]; then
    if [[ -n $(apt_field "busybox-static=$RV_BUSYBOX_VERSION" Version) ]]; then
      bb_spec=busybox-static=$RV_BUSYBOX_VERSION
    else
      log "warning: busybox-static $RV_BUSYBOX_VERSION (the riscv64 guest's) is not in" \
        "$USER_SUITE/i386; taking $(apt_field busybox-static Version) instead"
    fi
  fi
  fetch "$USER_SUITE" "$bb_spec" "$APT_DIR/pkg/busybox"
  build_initrd "$APT_DIR/pkg/busybox"
  write_provenance
  log "done: $OUT ($(cut -f1,2 "$OUT/packages.tsv" | tr '\t' ' ' | paste -sd, - | sed 's/,/, /g'))"
}

main "$@"
