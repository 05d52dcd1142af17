from cgan_lightning.cli import main

main()
