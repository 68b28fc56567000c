#!/bin/sh
# Runs inside the health test VM (as root) and leaves everything for the host-side test
# (tests/qemu_health.rs) in /share: lifeboat's JSON and exit status for every emulated
# disk next to smartctl --json and nvme smart-log -o json from the same moment, then the
# same after the host has set the NVMe critical warning from the QEMU monitor.
S=/share
run() { # run NAME CMD...: stdout to $S/NAME, stderr to $S/NAME.err, exit status to $S/NAME.rc
  n=$1; shift
  "$@" > "$S/$n" 2> "$S/$n.err"; echo $? > "$S/$n.rc"
}
echo "kernel $(uname -r)"
mkdir -p $S/raw
# NVMe: lifeboat first, then the two tools (no I/O in between, so the counters agree).
run nvme.lifeboat.json lifeboat health --json --raw-out $S/raw /dev/nvme0n1
run nvme.nvmecli.json nvme smart-log -o json /dev/nvme0
run nvme.smartctl.json smartctl -j -a /dev/nvme0
run nvme.errlog.json nvme error-log -o json /dev/nvme0
run nvme.idctrl.json nvme id-ctrl -o json /dev/nvme0
run nvme.selftest.json nvme self-test-log -o json /dev/nvme0
# AHCI disk through libata's SAT.
run sda.lifeboat.json lifeboat health --json --raw-out $S/raw /dev/sda
run sda.smartctl.json smartctl -j -a /dev/sda
run sda.lifeboat12.json lifeboat health --json --type sat,12 /dev/sda
# USB mass storage without SAT (QEMU usb-storage 46f4:0001).
run sdb.lifeboat.json lifeboat health --json /dev/sdb
run sdb.lifeboat-sat.json lifeboat health --json --type sat /dev/sdb
run sdb.smartctl.txt smartctl -a /dev/sdb
# SD card: sysfs registers, ACMD13 now, CMD56 only when asked (QEMU's MID 0xAA is unknown).
for a in cid csd scr ssr name manfid oemid date serial; do
  echo "$a=$(cat /sys/block/mmcblk0/device/$a)"
done > $S/mmc.sysfs
run mmc.lifeboat.json lifeboat health --json /dev/mmcblk0
run mmc.cmd56.json lifeboat health --json --cmd56 sandisk /dev/mmcblk0
run mmc.cmd56-twostep-refused.json lifeboat health --json --cmd56 two-step /dev/mmcblk0
run mmc.cmd56-twostep.json lifeboat health --json --cmd56 two-step --cmd56-write /dev/mmcblk0
run mmc.emmc-refused.json lifeboat health --json --type emmc /dev/mmcblk0
# Every disk, text and JSON.
run all.lifeboat.txt lifeboat health
run all.lifeboat.json lifeboat health --json
# Permissions: as an unprivileged user, first without access to the node, then with read
# access but without CAP_SYS_ADMIN for the NVMe log page.
run nonroot.txt su nobody -s /bin/sh -c "lifeboat health /dev/nvme0n1"
chmod 0644 /dev/nvme0n1 /dev/sda
run nonroot-readable.json su nobody -s /bin/sh -c "lifeboat health --json /dev/nvme0n1 /dev/sda"
chmod 0600 /dev/nvme0n1 /dev/sda
# A read error the host injected (blkdebug) at sector 8192 of the AHCI disk: the kernel
# logs it, and lifeboat must say so.
dd if=/dev/sda of=/dev/null bs=4096 skip=1024 count=1 iflag=direct 2> $S/sda-ioerr.dd
run sda-ioerr.lifeboat.json lifeboat health --json /dev/sda
# A short self-test (QEMU logs a pass at hour 0x1234 at once), then the logs again.
run sda-selftest-start.txt smartctl -t short /dev/sda
mkdir -p $S/raw-selftest
run sda-selftest.lifeboat.json lifeboat health --json --raw-out $S/raw-selftest /dev/sda
run sda-selftest.lifeboat.txt lifeboat health /dev/sda
run sda-selftest.smartctl.json smartctl -j -a /dev/sda
# Critical warning: the host sets it through the QEMU monitor when it sees this line.
echo "LB: READY_FOR_QOM" > /dev/console
i=0; while [ ! -e $S/qom-done ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
run nvme-crit.lifeboat.json lifeboat health --json /dev/nvme0n1
run nvme-crit.nvmecli.json nvme smart-log -o json /dev/nvme0
run nvme-crit.smartctl.json smartctl -j -a /dev/nvme0
# The SD host's error counters after every command of the run (no CMD8 timeout).
cat /sys/kernel/debug/mmc0/err_stats > $S/mmc.err_stats 2>/dev/null
dmesg | tail -40 > $S/dmesg.txt
echo guest done
