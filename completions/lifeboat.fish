# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_lifeboat_global_optspecs
    string join \n json q/quiet h/help V/version
end

function __fish_lifeboat_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_lifeboat_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_lifeboat_using_subcommand
    set -l cmd (__fish_lifeboat_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c lifeboat -n "__fish_lifeboat_needs_command" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_needs_command" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_needs_command" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_needs_command" -s V -l version -d 'Print version'
complete -c lifeboat -n "__fish_lifeboat_needs_command" -f -a "list" -d 'List disks: size, transport, model, in use, Home Assistant OS or not'
complete -c lifeboat -n "__fish_lifeboat_needs_command" -f -a "inspect" -d 'Show what is on a disk or image: table, board, OS slots, data, backups'
complete -c lifeboat -n "__fish_lifeboat_needs_command" -f -a "backup" -d 'Home Assistant backups: list, check, extract, decrypt (SecureTar v1/v2/v3)'
complete -c lifeboat -n "__fish_lifeboat_needs_command" -f -a "health" -d 'Wear and health of SD cards, eMMC, NVMe and SATA/USB disks, with a verdict'
complete -c lifeboat -n "__fish_lifeboat_needs_command" -f -a "image" -d 'Copy a disk into a hashed, compressed image of its used blocks, rescuing bad sectors'
complete -c lifeboat -n "__fish_lifeboat_needs_command" -f -a "verify" -d 'Check an image against its manifest, bmap or SHA-256, or a disk against an image'
complete -c lifeboat -n "__fish_lifeboat_needs_command" -f -a "report-image" -d 'Draw read speed and bad areas of an image manifest as an SVG picture'
complete -c lifeboat -n "__fish_lifeboat_needs_command" -f -a "media-test" -d 'Destructive test of a new card or SSD: real capacity (fake cards), bad areas, speed'
complete -c lifeboat -n "__fish_lifeboat_needs_command" -f -a "flash" -d 'Write an image to a disk: only mapped blocks, every byte read back and compared'
complete -c lifeboat -n "__fish_lifeboat_needs_command" -f -a "clone" -d 'Copy one disk onto another (old card to new card or SSD): used blocks, read back'
complete -c lifeboat -n "__fish_lifeboat_needs_command" -f -a "shrink" -d 'Shrink an image\'s data partition and tables to fit a slightly smaller disk'
complete -c lifeboat -n "__fish_lifeboat_needs_command" -f -a "udev" -d 'udev rules: keep desktops from mounting HAOS media, stable /dev names'
complete -c lifeboat -n "__fish_lifeboat_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand list" -l sysfs-root -d 'Read sysfs, /proc and /dev under this root instead of / (for tests)' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand list" -s p -l partitions -d 'Also list partitions under each disk'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand list" -l no-probe -d 'Do not open disks to recognise Home Assistant OS (sysfs facts only)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand list" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand list" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand list" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand inspect" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand inspect" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand inspect" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and not __fish_seen_subcommand_from list check extract decrypt create rescue report help" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and not __fish_seen_subcommand_from list check extract decrypt create rescue report help" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and not __fish_seen_subcommand_from list check extract decrypt create rescue report help" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and not __fish_seen_subcommand_from list check extract decrypt create rescue report help" -f -a "list" -d 'List backups on an HAOS disk or image, in a directory, or given as files'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and not __fish_seen_subcommand_from list check extract decrypt create rescue report help" -f -a "check" -d 'Restore drill: read every part of a backup as Home Assistant would'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and not __fish_seen_subcommand_from list check extract decrypt create rescue report help" -f -a "extract" -d 'Decrypt and unpack a backup into a directory, safely'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and not __fish_seen_subcommand_from list check extract decrypt create rescue report help" -f -a "decrypt" -d 'Write the same backup without encryption (still restorable)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and not __fish_seen_subcommand_from list check extract decrypt create rescue report help" -f -a "create" -d 'Make a restorable backup from a card or image that no longer boots'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and not __fish_seen_subcommand_from list check extract decrypt create rescue report help" -f -a "rescue" -d 'Copy the backups a card or image holds off it, each checked, newest first'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and not __fish_seen_subcommand_from list check extract decrypt create rescue report help" -f -a "report" -d 'What a restore will not bring back by itself: sign-ins, hardware, mounts'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and not __fish_seen_subcommand_from list check extract decrypt create rescue report help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from list" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from check" -l slug -d 'BACKUP is an HAOS disk, image, device or data partition: use its backup with this slug, file name or path (as `backup list` shows them), read in place' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from check" -l password-file -d 'Read the password from the first line of FILE (\'-\' = standard input)' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from check" -l emergency-kit -d 'Take the key from a Home Assistant backup emergency-kit file' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from check" -l max-size -d 'Stop reading an inner archive past this many uncompressed bytes (e.g. 20G)' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from check" -l no-prompt -d 'Never prompt for a password on the terminal'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from check" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from check" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from extract" -l slug -d 'BACKUP is an HAOS disk, image, device or data partition: use its backup with this slug, file name or path (as `backup list` shows them), read in place' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from extract" -s o -l output -d 'Directory to extract into (created if missing)' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from extract" -l only -d 'Only these archives: homeassistant, an add-on slug, share, ssl, media…' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from extract" -l max-size -d 'Write at most this many bytes (default: the free space), e.g. 20G' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from extract" -l password-file -d 'Read the password from the first line of FILE (\'-\' = standard input)' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from extract" -l emergency-kit -d 'Take the key from a Home Assistant backup emergency-kit file' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from extract" -l force -d 'Replace what an earlier extraction left in DIR'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from extract" -l no-same-owner -d 'Do not give files the owners in the backup (the default unless run as root)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from extract" -l no-prompt -d 'Never prompt for a password on the terminal'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from extract" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from extract" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from extract" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from decrypt" -l slug -d 'BACKUP is an HAOS disk, image, device or data partition: use its backup with this slug, file name or path (as `backup list` shows them), read in place' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from decrypt" -s o -l output -d 'The unencrypted backup to write' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from decrypt" -l password-file -d 'Read the password from the first line of FILE (\'-\' = standard input)' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from decrypt" -l emergency-kit -d 'Take the key from a Home Assistant backup emergency-kit file' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from decrypt" -l force -d 'Replace FILE if it exists'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from decrypt" -l no-prompt -d 'Never prompt for a password on the terminal'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from decrypt" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from decrypt" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from decrypt" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -s o -l output -d 'The backup to write (a .tar Home Assistant restores)' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -l name -d 'Name of the backup (default: "Recovered by lifeboat <date>")' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -l partial -d 'Only these parts: homeassistant, addons, folders, share, ssl, media, addons/local, or add-on slugs' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -l exclude -d 'Leave these parts out (the same words, and `database`)' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -l securetar -d 'SecureTar version: 2 (any HA since 2025.1) or 3 (HA 2026.3 and later)' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -l password-file -d 'Read the password from the first line of FILE (\'-\' = standard input)' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -l emergency-kit -d 'Take the key from a Home Assistant backup emergency-kit file' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -l force -d 'Replace FILE if it exists'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -l exclude-database -d 'Leave the recorder database (history, statistics) out'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -l no-database-check -d 'Do not run SQLite\'s integrity check on the database'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -l no-verify -d 'Do not read the new backup back when it is written'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -l encrypt -d 'Encrypt (SecureTar), with the key from the emergency kit'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -l key-from-card -d 'Encrypt with the backup key Home Assistant stored on the card (.storage/backup); saying so is your consent to read it'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -l no-prompt -d 'Never prompt for a password on the terminal'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from rescue" -s o -l output -d 'Directory to copy the backups into (created if missing)' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from rescue" -l password-file -d 'Read the password from the first line of FILE (\'-\' = standard input)' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from rescue" -l emergency-kit -d 'Take the key from a Home Assistant backup emergency-kit file' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from rescue" -l force -d 'Replace backups an earlier rescue copied into DIR'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from rescue" -l no-check -d 'Copy only; do not check the copies'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from rescue" -l no-prompt -d 'Never prompt for a password on the terminal'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from rescue" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from rescue" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from rescue" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from report" -l password-file -d 'Read the password from the first line of FILE (\'-\' = standard input)' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from report" -l emergency-kit -d 'Take the key from a Home Assistant backup emergency-kit file' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from report" -l markdown -d 'Print a Markdown checklist to tick off during the migration'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from report" -l no-prompt -d 'Never prompt for a password on the terminal'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from report" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from report" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from report" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "list" -d 'List backups on an HAOS disk or image, in a directory, or given as files'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "check" -d 'Restore drill: read every part of a backup as Home Assistant would'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "extract" -d 'Decrypt and unpack a backup into a directory, safely'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "decrypt" -d 'Write the same backup without encryption (still restorable)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "create" -d 'Make a restorable backup from a card or image that no longer boots'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "rescue" -d 'Copy the backups a card or image holds off it, each checked, newest first'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "report" -d 'What a restore will not bring back by itself: sign-ins, hardware, mounts'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand health" -s d -l type -d 'Health source, like smartctl -d: sat, sat,12, nvme, sntjmicron, sntasmedia, sntrealtek, sd, emmc, none. With --from-raw: the page kind (ata-smart, nvme-smart, ext-csd, sd-cid, cmd56-sandisk, ata-blob, …)' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand health" -l raw-out -d 'Save the raw pages read into DIR, as <disk>.<kind>.bin' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand health" -l from-raw -d 'Decode a saved page instead of reading a device (needs --type KIND)' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand health" -l cmd56 -d 'Ask an SD card for its vendor health report with this method even when its manufacturer is not one lifeboat knows (read-only unless --cmd56-write)' -r -f -a "sandisk\t'SanDisk/WD industrial (and Longsys under the same argument): read arg 0x00000001'
innodisk\t'Innodisk: read arg 0x110005FD'
adata\t'ADATA / SMI controllers: read arg 0x110005F1'
transcend\t'Transcend industrial: read arg 0x110005F9'
micron\t'Micron industrial: read arg 0x110005FB'
swissbit\t'Swissbit: read arg 0x53420001'
two-step\t'Apacer/Phison/Kingston industrial: WRITE arg 0x10 (zero block) then read arg 0x21'"
complete -c lifeboat -n "__fish_lifeboat_using_subcommand health" -l sysfs-root -d 'Read sysfs, /proc and /dev under this root instead of / (for tests)' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand health" -l cmd56-write -d 'Allow the two-step CMD56 method, which first writes one block of zeros to the card\'s controller (not to its storage)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand health" -l sysfs-only -d 'Read sysfs only: open no device and send no command'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand health" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand health" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand health" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -s o -l output -d 'Image file to write (.img, .img.zst, .img.gz, .img.xz), or - for stdout' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l format -d 'Output format (default: from the output name; raw for stdout)' -r -f -a "raw\t'Raw disk image (sparse when written to a file)'
zstd\t'zstd, multithreaded'
gzip\t'gzip, parallel members'
xz\t'xz (slow: ~3 MB/s per core)'"
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l level -d 'Compression level (zstd 1-19, default 3; gzip 1-9, default 6; xz 0-9, default 3)' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l retries -d 'Passes over bad sectors after scraping' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l timeout -d 'Give up on one read after this many seconds (0: wait for the kernel)' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l max-rate -d 'Read at most this many bytes per second (suffixes K, M, G), for cards that fail when read fast' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l reopen-wait -d 'Wait this long for a device that dropped off the bus to come back' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l threads -d 'Compression threads (default: every core)' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l chunk -d 'Bytes per read in the copy passes (suffixes K, M)' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l bmap -d 'Write the bmap here instead of FILE.bmap' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l manifest -d 'Write the manifest here instead of FILE.manifest.json' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l mapfile -d 'Keep the ddrescue mapfile here instead of FILE.map' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l report -d 'Draw read speed and bad areas across the disk into this SVG file' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l mapfile-interval -d 'Seconds between mapfile saves' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l all -d 'Read every sector, not only the blocks the filesystems use'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l force -d 'Overwrite existing outputs; image a disk that is mounted read-write'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l resume -d 'Continue an interrupted run from FILE.map into FILE.part (raw .img only)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l no-trim -d 'Do not trim failed blocks (read them sector by sector from both edges)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l no-scrape -d 'Do not scrape failed blocks sector by sector'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l buffered -d 'Read block devices through the page cache instead of O_DIRECT'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand image" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand verify" -l manifest -d 'lifeboat manifest to check against (default: IMAGE.manifest.json if present)' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand verify" -l bmap -d 'bmap file (lifeboat\'s or bmaptool\'s) to check against (default: IMAGE.bmap if present)' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand verify" -l sha256 -d 'Expected SHA-256 of the image or of the file as stored, in hex' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand verify" -l against -d 'Device (or raw image file) that should hold the image; compared byte for byte' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand verify" -l no-sidecars -d 'Do not pick up IMAGE.manifest.json / IMAGE.bmap automatically'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand verify" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand verify" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand verify" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand report-image" -s o -l output -d 'SVG file to write' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand report-image" -l force -d 'Overwrite an existing output file'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand report-image" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand report-image" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand report-image" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand media-test" -l quick -d 'Sample a few hundred places instead of every byte (finds fake capacity in seconds)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand media-test" -l yes -d 'Do not ask for confirmation (needed without a terminal)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand media-test" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand media-test" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand media-test" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand flash" -l bmap -d 'bmap file (lifeboat\'s or bmaptool\'s) giving the ranges to write (default: IMAGE.bmap beside the image)' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand flash" -l retries -d 'Rewrites of a range that reads back wrong before giving up' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand flash" -l no-bmap -d 'Write every byte of the image, even when a bmap is beside it'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand flash" -l grow -d 'Also grow the data partition to fill a larger disk (HAOS grows its filesystem)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand flash" -s y -l yes -d 'Do not ask for confirmation (for scripts; check the device name first)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand flash" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand flash" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand flash" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand clone" -l retries -d 'Rewrites of a range that reads back wrong on the target before giving up' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand clone" -l read-retries -d 'Re-reads of each unreadable source sector before it is zero-filled' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand clone" -l timeout -d 'Give up on a source read after this long (0: wait for the kernel)' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand clone" -l mapfile -d 'Also write a GNU ddrescue mapfile of the source read to FILE' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand clone" -l all -d 'Copy every sector of the source, not only the used blocks'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand clone" -l grow -d 'Also grow the data partition to fill a larger target (HAOS grows its filesystem)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand clone" -l force -d 'Clone a source mounted read-write, and overwrite an existing --mapfile'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand clone" -s y -l yes -d 'Do not ask for confirmation (for scripts; check the device names first)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand clone" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand clone" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand clone" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand shrink" -s o -l output -d 'Where to write the shrunk raw image' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand shrink" -l size -d 'Size of the target in bytes (K, M, G suffixes: binary units)' -r
complete -c lifeboat -n "__fish_lifeboat_using_subcommand shrink" -l to -d 'Take the size from this disk (only read: opened read-only for its size)' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand shrink" -l force -d 'Replace OUT if it exists'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand shrink" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand shrink" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand shrink" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand udev; and not __fish_seen_subcommand_from install help" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand udev; and not __fish_seen_subcommand_from install help" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand udev; and not __fish_seen_subcommand_from install help" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand udev; and not __fish_seen_subcommand_from install help" -f -a "install" -d 'Install the rules that keep desktops from mounting HAOS media'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand udev; and not __fish_seen_subcommand_from install help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand udev; and __fish_seen_subcommand_from install" -l dir -d 'Directory to install the rules into' -r -F
complete -c lifeboat -n "__fish_lifeboat_using_subcommand udev; and __fish_seen_subcommand_from install" -l print -d 'Print the rules on stdout instead of installing them'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand udev; and __fish_seen_subcommand_from install" -l no-reload -d 'Do not run udevadm (reload the rules, replay block device events)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand udev; and __fish_seen_subcommand_from install" -l json -d 'Print machine-readable JSON on stdout instead of text (see docs/json.md)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand udev; and __fish_seen_subcommand_from install" -s q -l quiet -d 'Print nothing but errors (the exit status still tells the result)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand udev; and __fish_seen_subcommand_from install" -s h -l help -d 'Print help'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand udev; and __fish_seen_subcommand_from help" -f -a "install" -d 'Install the rules that keep desktops from mounting HAOS media'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand udev; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and not __fish_seen_subcommand_from list inspect backup health image verify report-image media-test flash clone shrink udev help" -f -a "list" -d 'List disks: size, transport, model, in use, Home Assistant OS or not'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and not __fish_seen_subcommand_from list inspect backup health image verify report-image media-test flash clone shrink udev help" -f -a "inspect" -d 'Show what is on a disk or image: table, board, OS slots, data, backups'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and not __fish_seen_subcommand_from list inspect backup health image verify report-image media-test flash clone shrink udev help" -f -a "backup" -d 'Home Assistant backups: list, check, extract, decrypt (SecureTar v1/v2/v3)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and not __fish_seen_subcommand_from list inspect backup health image verify report-image media-test flash clone shrink udev help" -f -a "health" -d 'Wear and health of SD cards, eMMC, NVMe and SATA/USB disks, with a verdict'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and not __fish_seen_subcommand_from list inspect backup health image verify report-image media-test flash clone shrink udev help" -f -a "image" -d 'Copy a disk into a hashed, compressed image of its used blocks, rescuing bad sectors'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and not __fish_seen_subcommand_from list inspect backup health image verify report-image media-test flash clone shrink udev help" -f -a "verify" -d 'Check an image against its manifest, bmap or SHA-256, or a disk against an image'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and not __fish_seen_subcommand_from list inspect backup health image verify report-image media-test flash clone shrink udev help" -f -a "report-image" -d 'Draw read speed and bad areas of an image manifest as an SVG picture'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and not __fish_seen_subcommand_from list inspect backup health image verify report-image media-test flash clone shrink udev help" -f -a "media-test" -d 'Destructive test of a new card or SSD: real capacity (fake cards), bad areas, speed'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and not __fish_seen_subcommand_from list inspect backup health image verify report-image media-test flash clone shrink udev help" -f -a "flash" -d 'Write an image to a disk: only mapped blocks, every byte read back and compared'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and not __fish_seen_subcommand_from list inspect backup health image verify report-image media-test flash clone shrink udev help" -f -a "clone" -d 'Copy one disk onto another (old card to new card or SSD): used blocks, read back'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and not __fish_seen_subcommand_from list inspect backup health image verify report-image media-test flash clone shrink udev help" -f -a "shrink" -d 'Shrink an image\'s data partition and tables to fit a slightly smaller disk'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and not __fish_seen_subcommand_from list inspect backup health image verify report-image media-test flash clone shrink udev help" -f -a "udev" -d 'udev rules: keep desktops from mounting HAOS media, stable /dev names'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and not __fish_seen_subcommand_from list inspect backup health image verify report-image media-test flash clone shrink udev help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and __fish_seen_subcommand_from backup" -f -a "list" -d 'List backups on an HAOS disk or image, in a directory, or given as files'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and __fish_seen_subcommand_from backup" -f -a "check" -d 'Restore drill: read every part of a backup as Home Assistant would'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and __fish_seen_subcommand_from backup" -f -a "extract" -d 'Decrypt and unpack a backup into a directory, safely'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and __fish_seen_subcommand_from backup" -f -a "decrypt" -d 'Write the same backup without encryption (still restorable)'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and __fish_seen_subcommand_from backup" -f -a "create" -d 'Make a restorable backup from a card or image that no longer boots'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and __fish_seen_subcommand_from backup" -f -a "rescue" -d 'Copy the backups a card or image holds off it, each checked, newest first'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and __fish_seen_subcommand_from backup" -f -a "report" -d 'What a restore will not bring back by itself: sign-ins, hardware, mounts'
complete -c lifeboat -n "__fish_lifeboat_using_subcommand help; and __fish_seen_subcommand_from udev" -f -a "install" -d 'Install the rules that keep desktops from mounting HAOS media'
