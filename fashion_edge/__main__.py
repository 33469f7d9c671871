from fashion_edge.cli import main

main()
