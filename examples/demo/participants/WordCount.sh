# Counts the words of each message: the message comes on stdin, the count goes to OUT.
wc -w | tr -d ' '
