from mnemax.train.cli import train_main

train_main()
