#!/usr/bin/env bash
# A Debian riscv64 guest for wasmvisor: systemd, udev, Debian's own kernel and initramfs, DHCP on
# every wired NIC, root logged in on the serial and virtio consoles. Built from Debian's archive
# (the one the host's apt uses) with mmdebstrap; nothing of it is committed.
#
#   guest/debian.sh [OUT]     (default OUT: guest/work/debian)
#
# Writes OUT/disk.img (a sparse raw disk: an MBR and one bootable ext4 partition of
# DEBIAN_DISK_SIZE, default 4G, labelled "debian"), OUT/vmlinuz (the kernel as Debian ships it),
# OUT/initrd.img (Debian's initramfs-tools image) and OUT/README with the command lines that boot
# them. The disk boots by itself through Debian's U-Boot (u-boot-qemu): u-boot-menu writes
# /boot/extlinux/extlinux.conf, and rewrites it when apt installs or removes a kernel. A
# rebuild starts from scratch.
#
# Run as root on Debian 12. Maintainer scripts of riscv64 packages run under qemu-user: the
# script installs qemu-user-static and mmdebstrap when missing and, when the kernel has no
# binfmt_misc entry for riscv64 ELF files yet (no systemd-binfmt, e.g. in a container), mounts
# binfmt_misc and registers Debian's qemu-riscv64 entry (it says so; it stays registered).
#
# Environment:
#   GUEST_SUITES        suites to try, in order (default "trixie forky sid")
#   DEBIAN_DISK_SIZE    size of the root file system (mke2fs syntax, default 4G)
#   DEBIAN_PACKAGES     extra packages, comma-separated
set -Eeuo pipefail
trap 'echo "[debian] error: line $LINENO: $BASH_COMMAND failed" >&2' ERR

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-$GUEST_DIR/work/debian}
SUITES=${GUEST_SUITES:-trixie forky sid}
SIZE=${DEBIAN_DISK_SIZE:-4G}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
HOST_PACKAGES=(mmdebstrap qemu-user-static e2fsprogs debian-archive-keyring arch-test)
# What the guest gets beyond apt's required set. The kernel is Debian's generic riscv64 one.
PACKAGES=systemd-sysv,udev,dbus,linux-image-riscv64,initramfs-tools,kmod,iproute2,iputils-ping,procps,netbase,less,ca-certificates,u-boot-menu
# u-boot-menu's settings (/etc/default/u-boot): the root by label (the partition under U-Boot,
# the same file system however the disk is attached), the kernel's messages on the console,
# U-Boot's menu for a second. Its default device-tree directory is left out: QEMU's virt (and
# ours) hands U-Boot the device tree that describes the machine, none of the kernel's DTBs does.
UBOOT_MENU_CONFIG='U_BOOT_ROOT="root=LABEL=debian"
U_BOOT_PARAMETERS="ro console=ttyS0"
U_BOOT_TIMEOUT="10"
U_BOOT_FDT_DIR="/none/"'
[[ -n ${DEBIAN_PACKAGES:-} ]] && PACKAGES+=,$DEBIAN_PACKAGES

log() { printf '\033[1m[debian]\033[0m %s\n' "$*" >&2; }
die() {
  printf '[debian] error: %s\n' "$*" >&2
  exit 1
}
# shellcheck source=apt-archive.sh
source "$GUEST_DIR/apt-archive.sh"

[[ $(id -u) == 0 ]] || die 'run as root (mmdebstrap builds the tree as root; maintainer scripts run in a chroot)'

ensure_host_packages() {
  local missing=() p
  for p in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return
  log "installing host packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# riscv64 maintainer scripts run through qemu-riscv64 (binfmt_misc, as qemu-user-static sets up
# under systemd). Without systemd nothing registers it: do what systemd-binfmt would.
ensure_binfmt() {
  local mnt=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-riscv64.conf
  if [[ ! -e $mnt/register ]]; then
    log "mounting binfmt_misc on $mnt"
    mount -t binfmt_misc binfmt_misc "$mnt" || die "cannot mount binfmt_misc on $mnt"
  fi
  if [[ ! -e $mnt/qemu-riscv64 ]]; then
    [[ -r $conf ]] || die "$conf missing (qemu-user-static not installed?)"
    log "registering qemu-riscv64 for riscv64 ELF files ($conf)"
    cat "$conf" >"$mnt/register" || die "cannot register $conf in $mnt"
  fi
  grep -q '^enabled' "$mnt/qemu-riscv64" || die "binfmt entry $mnt/qemu-riscv64 is disabled"
}

# The partition starts 1 MiB in, as partitioning tools place it.
PART_START=2048

# write_mbr IMAGE: a classic MBR whose one partition (Linux, bootable: U-Boot's distro boot
# looks at bootable partitions first) runs from PART_START to the image's end.
write_mbr() {
  local img=$1 sectors
  sectors=$(($(stat -c %s "$img") / 512 - PART_START))
  le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }
  # Status 0x80, CHS "use LBA" (0xff…), type 0x83, CHS again, first sector, sector count.
  printf "\\x80\\xff\\xff\\xff\\x83\\xff\\xff\\xff$(le32 $PART_START)$(le32 "$sectors")" |
    dd of="$img" bs=1 seek=446 conv=notrunc status=none
  printf '\x55\xaa' | dd of="$img" bs=1 seek=510 conv=notrunc status=none
}

# Guest configuration, written into the finished tree ($1) by the host (no chroot needed).
write_guest_config() {
  local t=$1 uri=$2 suite=$3
  echo wasmvisor-debian >"$t/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\twasmvisor-debian\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$t/etc/hosts"
  printf 'LABEL=debian\t/\text4\tdefaults\t0\t1\n' >"$t/etc/fstab"
  # The user network's DNS server (QEMU slirp's address); DHCP also names it.
  echo 'nameserver 10.0.2.3' >"$t/etc/resolv.conf"
  printf 'deb %s %s main\n' "$uri" "$suite" >"$t/etc/apt/sources.list"
  # Every wired NIC (virtio-net: enp0s1/eth0, e1000: enp0sN) asks for a lease.
  mkdir -p "$t/etc/systemd/network"
  printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' >"$t/etc/systemd/network/80-wired.network"
  ln -sf /lib/systemd/system/systemd-networkd.service \
    "$t/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
  # root logs in without a password, on the consoles without being asked.
  sed -i 's/^root:[^:]*:/root::/' "$t/etc/shadow"
  mkdir -p "$t/etc/systemd/system/serial-getty@.service.d"
  cat >"$t/etc/systemd/system/serial-getty@.service.d/autologin.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=-/sbin/agetty -o '-- \\u' --noreset --noclear --autologin root --keep-baud 115200,57600,38400,9600 - ${TERM}
EOF
  # An empty machine-id: systemd makes one on first boot (each copy of the image its own).
  : >"$t/etc/machine-id"
  rm -f "$t/var/lib/dbus/machine-id"
}

main() {
  ensure_host_packages
  ensure_binfmt
  # OUT is replaced only if it is empty or an earlier build (its README says so): a mistyped
  # path must not cost the user a directory. The build happens beside it and is moved in at the
  # end, so an interrupted build never leaves a half-written root.img where OUT was.
  if [[ -e $OUT ]] && [[ -n $(ls -A "$OUT" 2>/dev/null) ]] &&
    ! grep -qs '^Debian .* built by guest/debian.sh' "$OUT/README"; then
    die "$OUT exists and is not an earlier guest/debian.sh build: give an empty or new directory"
  fi
  local final=$OUT
  OUT=$final.partial
  local uri suite tree=$OUT/tree ok=''
  uri=$(host_archive_uri)
  rm -rf "$OUT"
  mkdir -p "$OUT"
  for suite in $SUITES; do
    log "mmdebstrap: suite $suite"
    rm -rf "$tree"
    # initramfs-tools is configured before the kernel arrives: only the modules the virt board
    # needs to find its root disk go in (the default, MODULES=most, is tens of MB to unpack).
    if mmdebstrap --mode=root --variant=minbase --architectures=riscv64 --include="$PACKAGES" \
      --keyring="$KEYRING" --aptopt='Acquire::Check-Valid-Until "false"' \
      --aptopt='Acquire::Languages "none"' \
      --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" && echo MODULES=list > "$1/etc/initramfs-tools/conf.d/wasmvisor" && printf "%s\n" virtio_mmio virtio_pci virtio_blk ext4 crc32c_generic > "$1/etc/initramfs-tools/modules"' \
      --customize-hook="printf '%s\n' '$UBOOT_MENU_CONFIG' >> \"\$1/etc/default/u-boot\" && chroot \"\$1\" u-boot-update" \
      "$suite" "$tree" "deb $uri $suite main" >"$OUT/mmdebstrap-$suite.log" 2>&1; then
      ok=$suite
      break
    fi
    log "mmdebstrap: suite $suite failed: $(grep -m1 '^E:' "$OUT/mmdebstrap-$suite.log" || tail -1 "$OUT/mmdebstrap-$suite.log")"
  done
  [[ -n $ok ]] || die "no suite of [$SUITES] worked (logs: $OUT/mmdebstrap-*.log)"
  write_guest_config "$tree" "$uri" "$ok"

  local kernel initrd
  kernel=$(find "$tree/boot" "$tree/usr/lib/modules" -maxdepth 2 -name 'vmlinu[xz]*' -type f 2>/dev/null | sort | tail -1)
  initrd=$(find "$tree/boot" -maxdepth 1 -name 'initrd.img-*' -type f 2>/dev/null | sort | tail -1)
  [[ -n $kernel ]] || die 'no kernel in the tree (linux-image-riscv64 not installed?)'
  [[ -n $initrd ]] || die 'no initrd.img in /boot (update-initramfs did not run?)'
  cp "$kernel" "$OUT/vmlinuz"
  cp "$initrd" "$OUT/initrd.img"

  [[ -f $tree/boot/extlinux/extlinux.conf ]] || die 'u-boot-update wrote no /boot/extlinux/extlinux.conf'
  log "disk.img: MBR, one bootable ext4 partition of $SIZE"
  rm -f "$OUT/disk.img"
  truncate -s "$SIZE" "$OUT/disk.img"
  truncate -s +1M "$OUT/disk.img"
  write_mbr "$OUT/disk.img"
  mke2fs -q -t ext4 -L debian -E offset=$((PART_START * 512)) -d "$tree" "$OUT/disk.img" "$SIZE"
  rm -rf "$tree"
  cat >"$OUT/README" <<EOF
Debian ($ok) for riscv64, built by guest/debian.sh on $(date -u +%F), kernel ${initrd##*/initrd.img-}.
Boot it from its own disk, through Debian's U-Boot (apt install u-boot-qemu), as a machine does
(root logs in on the console without a password; 'poweroff' ends the VM):

  npx wasmvisor run --kernel /usr/lib/u-boot/qemu-riscv64_smode/uboot.elf \\
    --disk $final/disk.img --nic virtio,net=user --mem 1G

or with the kernel and initrd given from outside (the kernel the disk was built with):

  npx wasmvisor run --kernel $final/vmlinuz --initrd $final/initrd.img \\
    --disk $final/disk.img --nic virtio,net=user --mem 1G \\
    --append "console=ttyS0 root=LABEL=debian rw"

Add ',snapshot=on' after disk.img to keep the image as it is.
EOF
  rm -rf "$final"
  mv "$OUT" "$final"
  log "done: $final/{disk.img,vmlinuz,initrd.img} ($ok, kernel ${initrd##*/initrd.img-})"
  cat "$final/README" >&2
}

main "$@"
