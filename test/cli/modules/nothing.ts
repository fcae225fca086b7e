// A module that declares no classes.
export const nothing = 0
