from the_eye.cli import main

main()
