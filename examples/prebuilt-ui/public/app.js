// Stytch's prebuilt login UI (@stytch/vanilla-js StytchUIClient) against a whatsapp-otp service.
// EXAMPLE_CONFIG (config.js) names the service and the project's public token.
const { apiUrl, publicToken } = window.EXAMPLE_CONFIG

// Locally the service is http://localhost:8787, which `customBaseUrl` cannot express (it keeps only the
// host name and forces https://), so the SDK's own `endpoints` option names it. In production use
// `customBaseUrl: 'https://auth.example.com'` instead. clientsideServicesIframeURL points the phone
// field's number parsing at the service's own frame, so nothing is loaded from Stytch's hosts.
const client = new stytch.StytchUIClient(publicToken, {
  endpoints: {
    testAPIURL: apiUrl,
    liveAPIURL: apiUrl,
    clientsideServicesIframeURL: `${apiUrl}/clientside-services/index.html`,
  },
})

const props = {
  elementId: '#login',
  client,
  config: {
    products: [stytch.Products.otp],
    otpOptions: { methods: ['whatsapp'], expirationMinutes: 5 },
    sessionOptions: { sessionDurationMinutes: 60 },
  },
}
// @stytch/vanilla-js 6.3.0: the first mountLogin() only adds the <stytch-ui> element; the second renders it.
client.mountLogin(props)
client.mountLogin(props)

const account = document.getElementById('account')
const field = (name) => account.querySelector(`[data-field="${name}"]`)

function show(session) {
  const user = client.user.getSync()
  account.hidden = !session || !user
  if (account.hidden) return
  field('user-id').textContent = user.user_id
  field('phone').textContent = user.phone_numbers.map((p) => p.phone_number).join(', ')
  field('expires').textContent = new Date(session.expires_at).toLocaleString('en-US')
}

client.session.onChange(show)
show(client.session.getSync())

document.getElementById('sign-out').addEventListener('click', async () => {
  await client.session.revoke({ forceClear: true })
  location.reload()
})
