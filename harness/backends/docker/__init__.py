"""The docker backend: containers on a private bridge network (backend), each a host (host) that
runs programs with docker exec (exec); containers and network (containers), images (images) and
the labels that let a later run sweep what a killed one left (labels).
"""
