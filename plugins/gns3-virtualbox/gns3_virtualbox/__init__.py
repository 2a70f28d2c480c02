"""VirtualBox plugin: VirtualBox VMs as GNS3 nodes, driven through VirtualBox's own VBoxManage program."""
