// A module that fails as it is evaluated.
throw new Error('the module threw')
